"""Shared table plumbing: page size from the query string, sorting, pagination."""

from __future__ import annotations

from django.core.paginator import EmptyPage, PageNotAnInteger
from django_tables2 import RequestConfig, Table

from portal.models import Preference

PAGE_SIZES = (10, 25, 50, 100)


def page_size_from(request, *, default: int = 25, remember: str = "") -> int:
    """The `per_page` the request asks for, if it is one we offer; else the one the
    user saved under `remember` (by POST, see `page_size_save`); else the default.
    Reading a page never writes: a link with ?per_page= changes only that view."""
    raw = request.GET.get("per_page", "")
    size = int(raw) if raw in {str(s) for s in PAGE_SIZES} else None
    if size is not None:
        return size
    if remember:
        stored = Preference.objects.filter(user=request.user, key=f"{remember}.per_page")
        value = stored.values_list("value", flat=True).first()
        if value in PAGE_SIZES:
            return value
    return default


# Lists whose page size is remembered per user.
REMEMBERED_PAGE_SIZES = {"snapshots"}


def page_size_save(*, user, key: str, size: int) -> None:
    """Remember `size` as the user's page size for the list `key` (an explicit POST)."""
    if key not in REMEMBERED_PAGE_SIZES or size not in PAGE_SIZES:
        raise ValueError(f"{key}: {size}")
    Preference.objects.update_or_create(user=user, key=f"{key}.per_page", defaults={"value": size})


def table_configure(request, table: Table, *, per_page: int) -> Table:
    """Sort and paginate; a page number past the end shows the last page, not a 404."""
    # django-tables2 would take any `per_page` from the query string; we have
    # already validated it, so point its own lookup at a name nobody sends.
    table.per_page_field = "_tables2_per_page"
    try:
        RequestConfig(request, paginate={"per_page": per_page}).configure(table)
    except (EmptyPage, PageNotAnInteger):
        table.paginate(page=1, per_page=per_page)
    return table


def page_records(table: Table) -> list:
    """The model instances shown on the table's current page."""
    return [row.record for row in table.page.object_list] if table.page else []
