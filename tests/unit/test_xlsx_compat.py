"""``infrastructure/xlsx_compat.py`` overrides one xlsxwriter method (``_prepare_formula``) to
write the export's link formulas without xlsxwriter's function renaming: this fails when an
upgrade stops calling it as a formula is written, or changes what the file then holds."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from infrastructure.xlsx_compat import LINK_FORMULA, LinkSheet

LINK = f'{LINK_FORMULA}https://vk.com/id1","https://vk.com/id1")'


def test_writing_a_formula_goes_through_the_override_and_the_file_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared: list[str] = []
    prepare = LinkSheet._prepare_formula

    def counted(self: LinkSheet, formula: str, *args: object, **kwargs: object) -> str:
        prepared.append(formula)
        return prepare(self, formula, *args, **kwargs)

    monkeypatch.setattr(LinkSheet, "_prepare_formula", counted)
    book = xlsxwriter.Workbook(str(tmp_path / "links.xlsx"))
    sheet = book.add_worksheet("links", worksheet_class=LinkSheet)
    sheet.write_formula(0, 0, LINK, None, "https://vk.com/id1")
    sheet.write_formula(1, 0, "=XLOOKUP(1,A:A,B:B)")
    book.close()
    assert prepared == [LINK, "=XLOOKUP(1,A:A,B:B)"]
    cells = openpyxl.load_workbook(tmp_path / "links.xlsx")["links"]
    assert cells["A1"].value == LINK
    other = cells["A2"].value  # XLOOKUP is written as a dynamic array formula
    assert getattr(other, "text", other) == "=_xlfn.XLOOKUP(1,A:A,B:B)"  # other formulas renamed as before
