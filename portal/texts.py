"""Texts that a worker writes and a reader reads later, in the reader's language.

A worker has no reader: it cannot pick a language. So it stores what to say, not
the words: `say(gettext_noop("created %(done)s of %(total)s"), done=3, total=5)`
gives a string holding the msgid and its params as JSON, which goes wherever a
text went before (a job's progress and error lines, a step's label and detail, a
result's summary). `render()` (the `job_text` template filter) turns it into words
when a page or a mail is written, with gettext in the active language.

A param is shown as it is (a name, a fault message: what the cloud wrote stays
as the cloud wrote it), unless it says what it is:
- `word(msgid)`: a translatable word (a Nova task label, a status word, a noun);
- `text(stored)`: another stored text (a step's label, a StepFailed message),
  rendered in turn; a plain one is looked up in the catalog like any text;
  `listing([stored, ...])`: several, joined;
- `size(bytes)`, `clock(datetime)`, `span(seconds)`, and numbers: formatted in
  the reader's locale when shown, not when written.

A stored text that is not one of these (jobs written before, a cloud's message)
is shown as it is, translated when it is a msgid of the catalog.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.utils import formats, timezone, translation
from django.utils.translation import gettext

_PREFIX = '{"msgid":'


def say(msgid: str, **params) -> str:
    """What to say, stored: `msgid` (marked with gettext_noop) and its params."""
    return json.dumps({"msgid": msgid, "params": params}, ensure_ascii=False, default=str)


def word(msgid: str) -> dict:
    """A param that is itself a translatable word ("stopping", "instances")."""
    return {"word": msgid}


def text(stored: str) -> dict:
    """A param that is another stored text (a say() or a plain msgid/cloud text)."""
    return {"text": stored}


def listing(stored: list[str], separator: str = "; ") -> dict:
    """A param that is a list of stored texts, each rendered, joined by `separator`."""
    return {"list": stored, "sep": separator}


def size(size_bytes: int | float) -> dict:
    """A number of bytes, shown in binary units ("1.5 GiB")."""
    return {"size": size_bytes}


def clock(moment: datetime) -> dict:
    """A time of day, shown in the reader's time zone ("14:07")."""
    return {"clock": moment.isoformat()}


def span(seconds: float) -> dict:
    """A length of time ("90 s", "5 min", "2 h")."""
    return {"span": seconds}


def is_said(stored: str) -> bool:
    return stored.startswith(_PREFIX)


def render(stored) -> str:
    """The stored text in the active language (see the module's docstring)."""
    if not stored:
        return ""
    stored = str(stored)
    if "\n" in stored:  # an error: the kind's headline, then the failed step's line
        return "\n".join(render(line) for line in stored.split("\n"))
    if not is_said(stored):
        return gettext(stored)
    try:
        said = json.loads(stored)
        template, params = gettext(said["msgid"]), said.get("params") or {}
        return template % {name: _param(value) for name, value in params.items()}
    except (ValueError, KeyError, TypeError):
        # Not ours after all (or a broken params set): the text as it was stored.
        return stored


def english(stored) -> str:
    """The stored text in English, whatever language is active (logs, tests)."""
    with translation.override("en"):
        return render(stored)


def _param(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return formats.number_format(value, force_grouping=True)
    if not isinstance(value, dict):
        return str(value)
    if "word" in value:
        return gettext(value["word"]) if value["word"] else ""
    if "text" in value:
        return render(value["text"])
    if "list" in value:
        return str(value.get("sep", "; ")).join(render(item) for item in value["list"])
    if "size" in value:
        return _binary_size(value["size"])
    if "clock" in value:
        moment = timezone.localtime(datetime.fromisoformat(value["clock"]))
        # Hours and minutes, the 24-hour clock both of the portal's languages use.
        return formats.time_format(moment, "H:i")
    if "span" in value:
        return _span(float(value["span"]))
    return str(value)


def _binary_size(count: float) -> str:
    """ "1,2 GiB": the units Glance's sizes are in, the number as the reader writes it."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "B":
        return f"{formats.number_format(int(value), force_grouping=True)} B"
    return f"{formats.number_format(value, decimal_pos=1, force_grouping=True)} {unit}"


def _span(seconds: float) -> str:
    if seconds >= 7200:
        amount, unit = seconds / 3600, "h"
    elif seconds >= 120:
        amount, unit = seconds / 60, "min"
    else:
        amount, unit = seconds, "s"
    amount = round(amount, 1)
    whole = amount == int(amount)
    number = formats.number_format(int(amount) if whole else amount, force_grouping=True)
    return f"{number} {unit}"
