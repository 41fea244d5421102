"""Shared table plumbing: page size from the query string, sorting, pagination."""

from __future__ import annotations

from django.core.paginator import EmptyPage, PageNotAnInteger
from django_tables2 import RequestConfig, Table

from portal.models import Preference

PAGE_SIZES = (10, 25, 50, 100)


def page_size_from(request, *, default: int = 25, remember: str = "") -> int:
    """The `per_page` the request asks for, if it is one we offer; else the one
    remembered under `remember` for this user; else the default. A valid choice
    is remembered for next time."""
    key = f"{remember}.per_page"
    stored = None
    if remember:
        values = Preference.objects.filter(user=request.user, key=key).values_list(
            "value", flat=True
        )
        stored = values[0] if values else None
    try:
        size = int(request.GET["per_page"])
    except (KeyError, TypeError, ValueError):
        size = None
    if size in PAGE_SIZES:
        if remember and size != stored:
            Preference.objects.update_or_create(
                user=request.user, key=key, defaults={"value": size}
            )
        return size
    return stored if stored in PAGE_SIZES else default


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
