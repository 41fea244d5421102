"""Reading requests: safe redirects, and the one way to parse ids and numbers.

Every id, page number and count a request carries is parsed here: ASCII digits
only (`"²".isdigit()` is true, `int("²")` fails), bounded before anything grows
with the value, and anything else is a 400 with a message, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.datastructures import MultiValueDict
from django.utils.http import url_has_allowed_host_and_scheme

# Far below both SQLite's and PostgreSQL's bigint limits, far above any real id.
MAX_ID = 10**15
_DIGITS = frozenset("0123456789")


def next_url(request: HttpRequest) -> str:
    """The form's `next` (POST, else the query string) if it is a path on this site,
    else "". Only a path: a bare word ("abc", "job-detail") would make `redirect()`
    look it up as a view name (a 500), and "//host" or "/\\host" are other sites to a
    browser. Control characters would break the Location header (a 500)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    is_site_path = (
        target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and target.isprintable()
        and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    )
    return target if is_site_path else ""


def redirect_back(request: HttpRequest, fallback: str, **kwargs: Any) -> HttpResponseRedirect:
    """Redirect to the form's `next` if it is a path on this site, else to `fallback`
    (a URL name, reversed with `kwargs`). The one way to redirect where a request says."""
    target = next_url(request)
    return HttpResponseRedirect(target) if target else redirect(fallback, **kwargs)


def _digits(raw: str) -> bool:
    return 0 < len(raw) <= 16 and set(raw) <= _DIGITS


def parse_id(raw: object) -> int | None:
    """`raw` as a row id (1 … MAX_ID), or None if it is not one."""
    text = str(raw).strip()
    if not _digits(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def param_id(data: Mapping[str, Any], name: str) -> int | None:
    """The id in `data[name]`; None when absent or empty; 400 when malformed."""
    raw = data.get(name, "")
    if raw in ("", None):
        return None
    value = parse_id(raw)
    if value is None:
        raise BadRequest(f"“{name}” must be an id (digits only), not “{str(raw)[:40]}”.")
    return value


def param_ids(data: MultiValueDict[str, Any], name: str, *, limit: int) -> list[int]:
    """Every id in the list `data.getlist(name)`; 400 when one is malformed or too many."""
    raw = data.getlist(name)
    if len(raw) > limit:
        raise BadRequest(f"At most {limit:,} may be chosen at once; select all matching instead.")
    ids = [parse_id(value) for value in raw]
    if None in ids:
        raise BadRequest(f"“{name}” must hold ids (digits only).")
    return cast(list[int], ids)  # no None left


def param_int(
    data: Mapping[str, Any], name: str, *, default: int, low: int, high: int, clamp: bool = False
) -> int:
    """A whole number from `data[name]` within [low, high]; 400 when malformed, or
    when out of range unless `clamp` (then the nearest bound)."""
    raw = str(data.get(name, "") or "").strip()
    if not raw:
        return default
    if not _digits(raw.removeprefix("-")):
        raise BadRequest(f"“{name}” must be a whole number, not “{raw[:40]}”.")
    value = int(raw)
    if low <= value <= high:
        return value
    if clamp:
        return min(max(value, low), high)
    raise BadRequest(f"“{name}” must be between {low:,} and {high:,}.")


# Longer than any name, id or search anyone types. A 100,000-character search
# made SQLite give up ("LIKE or GLOB pattern too complex"), a 500.
MAX_SEARCH = 200


def param_search(data: Mapping[str, Any], name: str, *, label: str = "") -> str:
    """The free text in `data[name]`, stripped ("" when absent); 400 when longer
    than MAX_SEARCH. Every search box and text filter reads through here."""
    raw = data.get(name, "")
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > MAX_SEARCH:
        raise BadRequest(
            f"“{label or name}” may be at most {MAX_SEARCH} characters long "
            f"(this one has {len(text):,})."
        )
    return text


class IdConverter:
    """`<id:name>` in URLs: like `<int:>`, but bounded, so a 30-digit id is a 404,
    not an overflow in the database driver."""

    regex = "[0-9]{1,15}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(value)


def nul_refusing_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """A request with a NUL character in a parameter is a 400. No portal input has
    one, PostgreSQL text cannot hold one (a 500 where a view passes a parameter
    to a query as it came, e.g. a search box), and forms refuse it anyway."""

    def middleware(request: HttpRequest) -> HttpResponse:
        sources = [request.GET]
        if request.method == "POST":
            sources.append(request.POST)
        for data in sources:
            for key, values in data.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    raise BadRequest(f"“{key[:40]}” contains a NUL character.")
        return get_response(request)

    return middleware
