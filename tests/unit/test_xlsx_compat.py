"""infrastructure.exports overrides one xlsxwriter method (``_prepare_formula``) to write its
link formulas without xlsxwriter's function renaming; this fails when an upgrade moves it."""

from __future__ import annotations

import inspect

import xlsxwriter.worksheet

from infrastructure.exports import _LinkSheet


def test_xlsxwriter_still_prepares_formulas_where_the_export_expects() -> None:
    prepare = xlsxwriter.worksheet.Worksheet._prepare_formula
    assert list(inspect.signature(prepare).parameters)[:2] == ["self", "formula"]
    sheet = _LinkSheet()
    assert sheet._prepare_formula('=HYPERLINK("https://vk.com/id1","https://vk.com/id1")') == (
        'HYPERLINK("https://vk.com/id1","https://vk.com/id1")'
    )
    assert sheet._prepare_formula("=XLOOKUP(1,A:A,B:B)") == "_xlfn.XLOOKUP(1,A:A,B:B)"  # others as before
