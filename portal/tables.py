"""Shared table plumbing: page size from the query string, sorting, pagination."""

from __future__ import annotations

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django_tables2 import Column, RequestConfig, Table

from portal.preferences import preference_get, preference_set

PAGE_SIZES = (10, 25, 50, 100)


# What a cell shows for no value (django-tables2's default, kept for rows we render ourselves).
EMPTY_CELL = "—"


def time_text(value) -> str:
    """A date and time as "2026-11-28 09:15" (German: "28.11.2026 09:15") in the
    portal's time zone, or EMPTY_CELL."""
    if value is None:
        return EMPTY_CELL
    return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")


def cell_text(value) -> str:
    """A plain value as a cell shows it: EMPTY_CELL for None or ""."""
    return EMPTY_CELL if value is None or value == "" else value


class UnsortedColumn(Column):
    """A column whose header offers no sort, and says why (`sort_note`, shown as the
    header's title and to screen readers). For values read through a join (a
    project's or a user's name): no index orders the rows by them, so every view
    would sort every row the user may see, a cost that grows with the facility.
    A crafted `?sort=` for one is ignored, as for any column that is not orderable."""

    def __init__(self, *args, sort_note="", **kwargs):
        kwargs["orderable"] = False
        super().__init__(*args, **kwargs)
        self.sort_note = sort_note


class TimeColumn(Column):
    """A date and time as "2026-11-28 09:15" in the portal's time zone. Formatted in
    Python: django-tables2's DateTimeColumn renders a template for every cell, a
    third of a row's cost."""

    def render(self, value):
        return time_text(value)


def page_size_from(request, *, default: int = 25, remember: str = "") -> int:
    """The `per_page` the request asks for, if it is one we offer; else the one the
    user saved under `remember` (by POST, see `page_size_save`); else the default.
    Reading a page never writes: a link with ?per_page= changes only that view."""
    raw = request.GET.get("per_page", "")
    size = int(raw) if raw in {str(s) for s in PAGE_SIZES} else None
    if size is not None:
        return size
    if remember:
        value = preference_get(user=request.user, key=f"{remember}.per_page")
        if value in PAGE_SIZES:
            return value
    return default


# Lists whose page size is remembered per user.
REMEMBERED_PAGE_SIZES = {"snapshots"}


def page_size_save(*, user, key: str, size: int) -> None:
    """Remember `size` as the user's page size for the list `key` (an explicit POST)."""
    if key not in REMEMBERED_PAGE_SIZES or size not in PAGE_SIZES:
        raise ValueError(f"{key}: {size}")
    preference_set(user=user, key=f"{key}.per_page", value=size)


# Tables count their rows exactly up to this many; past it the page says "more
# than 1,000" and offers that many pages: counting 100,000 matches on every view
# would cost more than the rest of the page.
COUNT_EXACT_UP_TO = 1000


class CappedCountPaginator(Paginator):
    """A paginator whose count stops at COUNT_EXACT_UP_TO + 1 (one bounded
    COUNT over a LIMIT subquery, cheap at any table size); `count_text` says
    which it is."""

    cap = COUNT_EXACT_UP_TO

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        queryset = getattr(getattr(rows, "data", None), "data", rows)
        if isinstance(queryset, QuerySet):
            return queryset[: self.cap + 1].count()
        return len(rows)

    @property
    def is_capped(self) -> bool:
        return self.count > self.cap

    @property
    def count_text(self) -> str:
        return f"more than {self.cap:,}" if self.is_capped else f"{self.count:,}"


def table_configure(request, table: Table, *, per_page: int) -> Table:
    """Sort and paginate; a page number past the end shows the last page, not a 404."""
    # django-tables2 would take any `per_page` from the query string; we have
    # already validated it, so point its own lookup at a name nobody sends.
    table.per_page_field = "_tables2_per_page"
    paginate = {"per_page": per_page, "paginator_class": CappedCountPaginator}
    try:
        RequestConfig(request, paginate=paginate).configure(table)
    except (EmptyPage, PageNotAnInteger):
        table.paginate(page=1, **paginate)
    return table


def page_records(table: Table) -> list:
    """The model instances shown on the table's current page."""
    return [row.record for row in table.page.object_list] if table.page else []
