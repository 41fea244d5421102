"""Instance names: a prefix plus each participant (or a number), transliterated
to what a hostname may hold, at most 63 characters, unique within a launch."""

from __future__ import annotations

import re
import unicodedata

from instances.participants import participant_parts

MAX_NAME = 63

# German letters first, so "Müller" becomes "mueller", not "muller"; then the
# Latin letters Unicode does not decompose into a base letter plus accent.
_SPELLED = str.maketrans(
    {
        "ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss",
        "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "Æ": "AE", "æ": "ae",
        "Œ": "OE", "œ": "oe", "ı": "i", "Þ": "Th", "þ": "th",  # noqa: RUF001 (Turkish dotless i, on purpose)
    }
)  # fmt: skip


def hostname_part(text: str) -> str:
    """Letters, digits and dashes only: transliterated, lower case, no edge dashes."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_SPELLED))
    ascii_text = ascii_text.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def instance_names(*, prefix: str, participants: list[str], count: int) -> list[str]:
    """Final instance names: prefix + participant (or a number), ≤63 characters, unique.

    One instance keeps the prefix as its name. Collisions (two "Anna"s, or
    names cut at 63 characters) get -2, -3… so nothing is silently merged.
    Linear in the number of names: each base name remembers its next suffix.
    Callers bound `count` and `participants` (MAX_COUNT) before calling.
    """
    base = hostname_part(prefix) or "vm"
    if count == 1 and not participants:
        return [base[:MAX_NAME]]
    labels = [participant_parts(p)[0] for p in participants] or [
        str(i) for i in range(1, count + 1)
    ]
    names: list[str] = []
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    for label in labels:
        part = hostname_part(label) or "participant"
        candidate = f"{base}-{part}"[:MAX_NAME].rstrip("-")
        unique = candidate
        if unique in used:
            n = next_suffix.get(candidate, 2)
            while unique in used:
                suffix = f"-{n}"
                unique = candidate[: MAX_NAME - len(suffix)].rstrip("-") + suffix
                n += 1
            next_suffix[candidate] = n
        used.add(unique)
        names.append(unique)
    return names
