"""Cells a spreadsheet would run as a formula are written as text."""

from __future__ import annotations

import csv
import io

from portal.csvsafe import csv_cell, csv_document


def test_a_formula_cell_is_written_as_text():
    for formula in ('=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(formula) == "'" + formula


def test_ordinary_cells_are_unchanged():
    for text in ("Anna", "Anne-Marie", "anna@example.org", "https://10.0.0.5:8787/", "", "a=b"):
        assert csv_cell(text) == text
    assert csv_cell(None) == ""
    assert csv_cell(3) == "3"


def test_a_document_reads_back_with_every_cell_neutralised():
    text = csv_document([["name", "ip"], ["=1+1", "10.0.0.5"], ["Anne-Marie", "-"]])
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "ip"], ["'=1+1", "10.0.0.5"], ["Anne-Marie", "'-"],
    ]  # fmt: skip
