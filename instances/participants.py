"""Participants of a workshop launch: one per line, "Name <email>" or just a name."""

from __future__ import annotations

import re

MAX_COUNT = 100  # instances in one launch (and so participants in one workshop)

_EMAIL = re.compile(r"\s*<\s*([^<>\s]+@[^<>\s]+)\s*>\s*$")


def participant_parts(line: str) -> tuple[str, str]:
    """("Anna Example", "anna@example.org") from "Anna Example <anna@example.org>";
    the email is optional."""
    found = _EMAIL.search(line)
    if not found:
        return line.strip(), ""
    return line[: found.start()].strip() or found.group(1), found.group(1)


def participants_from(text: str, *, limit: int = MAX_COUNT + 1) -> list[str]:
    """One participant per line; blank lines ignored; at most `limit` (one more than
    allowed, so a caller can tell "too many" without reading a million lines)."""
    found = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            found.append(line)
            if len(found) >= limit:
                break
    return found
