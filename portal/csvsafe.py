"""CSV the portal writes, safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which
some spreadsheets skip before looking) is read as a formula when the file is
opened: `=HYPERLINK("http://evil","x")` in a participant's name runs on the
organiser's machine. OWASP's remedy: such a cell starts with a single quote,
which spreadsheets show as text. Every CSV download goes through csv_document.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """The cell as text, with a leading `'` if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_document(rows: Iterable[Iterable[object]]) -> str:
    """The rows (the header first) as CSV text, every cell through csv_cell."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()
