"""The one use of xlsxwriter beyond its documented API: a worksheet that skips formula renaming
for the export's link formulas, by overriding xlsxwriter's private ``_prepare_formula``."""

from __future__ import annotations

from typing import Any

import xlsxwriter.worksheet

LINK_FORMULA = '=HYPERLINK("'  # how every link formula the export writes begins


class LinkSheet(xlsxwriter.worksheet.Worksheet):
    """A worksheet that writes our ``HYPERLINK`` formulas as they are. xlsxwriter otherwise runs
    every formula through some thirty regular expressions (renaming newer Excel functions),
    which made an XLSX export 2.5 times slower with four links a row; ours need no renaming.
    ``_prepare_formula`` is xlsxwriter's own name: should it change, this override is simply
    not called and exports are slower, not wrong (``tests/unit/test_xlsx_compat.py`` notices)."""

    def _prepare_formula(self, formula: str, *args: Any, **kwargs: Any) -> str:
        if formula.startswith(LINK_FORMULA):
            return formula[1:]  # without the "=", as xlsxwriter stores formulas
        return super()._prepare_formula(formula, *args, **kwargs)
