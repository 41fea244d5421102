import django_filters
from django import forms
from django.core.exceptions import BadRequest
from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from portal.http import MAX_SEARCH, param_search
from portal.name_search import MIN_CONTAINS, name_contains_q


class BoundedFilterSet(django_filters.FilterSet):
    """The base of every list's FilterSet: each free-text filter is at most
    MAX_SEARCH characters, and a longer one is a 400 with a message (see
    portal.http.param_search) before any query is built. Its input says so too
    (maxlength), and the bulk actions that carry the filter as hidden fields are
    bounded by the same check."""

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        for name, filter_ in self.filters.items():
            if isinstance(filter_, django_filters.CharFilter):
                filter_.extra["max_length"] = MAX_SEARCH  # the form's input says so too
                if data is not None:
                    param_search(data, name, label=filter_.label or name)


def style_form(form: forms.Form) -> forms.Form:
    """Give a filter form's widgets Bootstrap's classes."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxSelectMultiple):
            widget.attrs.setdefault("class", "form-check-input")
        elif isinstance(widget, forms.Select):
            widget.attrs.setdefault("class", "form-select form-select-sm")
        else:
            widget.attrs.setdefault("class", "form-control form-control-sm")
    return form


def quick_search(queryset: QuerySet, value: str, *, contains: tuple[str, ...]) -> QuerySet:
    """Rows whose OpenStack id starts with `value` (people paste whole ids or the
    first characters of one), whose case-folded name starts with it ("*" in front:
    contains it), or whose `contains` fields contain it.

    Every term is answered by an index at any mirror size: the id and name by
    prefix ("*text": the name by its trigrams, portal.name_search), and the `contains` fields (a project's name, a creator's username:
    small tables) by first finding the few matching related rows, then their ids.
    Those ids are read first, in their own query, and written into the search as
    a list (no term at all when none match): with the subquery inline, neither
    database could tell it was small, so SQLite walked every snapshot of a site
    and sorted them (3.5x slower at 100,000 than at 100), instead of joining
    the three index lookups.
    """
    value = value.strip()
    if not value:
        return queryset
    anywhere = value.startswith(CONTAINS_MARK)
    term = value.lstrip(CONTAINS_MARK).strip()
    if not term:
        return queryset
    # "*text": no id starts with "*", so the id term is left out.
    name = name_q(value, model=queryset.model)
    wanted = name if anywhere else id_prefix_q(value) | name
    scan = name_scan_q(value) if anywhere else None
    for field_name in contains:
        relation, _, column = field_name.partition("__")
        related = queryset.model._meta.get_field(relation).related_model
        matching = related._default_manager.filter(**{f"{column}__icontains": term})
        ids = list(matching.order_by().values_list("pk", flat=True)[: MAX_RELATED_IDS + 1])
        if len(ids) > MAX_RELATED_IDS:  # a term as broad as "a": the list would be long
            related_q = Q(**{f"{relation}_id__in": matching.values("pk")})
        elif ids:
            related_q = Q(**{f"{relation}_id__in": ids})
        else:
            continue
        wanted |= related_q
        if scan is not None:
            scan |= related_q
    return few_matches_first(queryset, wanted, broad=scan)


# Prefix searches whose matches number up to this many are read first, and the
# list then asks for those rows by id (see few_matches_first).
MAX_MATCHED_IDS = 200


def few_matches_first(queryset: QuerySet, wanted: Q, *, broad: Q | None = None) -> QuerySet:
    """`queryset.filter(wanted)`, where `wanted` is answered by an index (an id or
    name prefix) and usually matches a few rows: those rows' ids are read first,
    unordered, and the list asks for them by primary key.

    Asked in one query with the list's order, SQLite on a project's page walked
    that project's index in the list's order (no sort to do, it reckoned) and
    tested all of the project's 50,000 snapshots against the prefix: 13x slower
    at 100,000 than at 100. Unordered, the prefix's own index is the plain choice.
    More matches than MAX_MATCHED_IDS (a term as broad as "s"): the one query,
    whose order walk then finds a page soon; with `broad` instead of `wanted`
    if given (the same rows, asked without the trigram index, which would hand
    over every match of "*snap" before the walk could begin)."""
    ids = list(
        queryset.filter(wanted).order_by().values_list("pk", flat=True)[: MAX_MATCHED_IDS + 1]
    )
    if len(ids) > MAX_MATCHED_IDS:
        return queryset.filter(wanted if broad is None else broad)
    return queryset.filter(pk__in=ids)


# A quick search's related matches (projects, users) up to this many are written
# into the query as a list of ids; more stay a subquery.
MAX_RELATED_IDS = 200


def id_prefix_q(value: str) -> Q:
    """The OpenStack id starts with `value`. Nova and Glance ids are lower-case
    UUIDs, so the pasted text is lower-cased and matched by the id index."""
    return prefix_q("openstack_id", value.strip().lower())


def name_contains(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """A django-filter method: the case-folded name contains `value`, the same on
    SQLite and PostgreSQL (also for "Ü" and "ß"). A scan: for short lists only
    (the base image catalog); long ones use `name_starts`."""
    value = value.strip().lstrip(CONTAINS_MARK).strip()
    return queryset.filter(name_key__contains=value.casefold()) if value else queryset


def name_starts(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """A django-filter method: the case-folded name starts with `value` (an index
    answers it at any size), or contains it when written "*value" (a trigram
    index finds the matching rows first; see few_matches_first)."""
    value = value.strip()
    if not value.lstrip(CONTAINS_MARK).strip():
        return queryset
    if value.startswith(CONTAINS_MARK):
        wanted = name_q(value, model=queryset.model)
        return few_matches_first(queryset, wanted, broad=name_scan_q(value))
    return queryset.filter(name_q(value, model=queryset.model))


# A search term starting with this matches anywhere in the name, found by a
# trigram index (portal.name_search) and so at least MIN_CONTAINS characters long;
# without it, names match from their start, which an index answers at any size.
CONTAINS_MARK = "*"


def prefix_q(field_name: str, value: str) -> Q:
    """Rows whose `field_name` starts with `value`, answered by the column's index.

    SQLite's LIKE folds ASCII case, so it cannot use a (binary) index; on SQLite
    the prefix becomes a range [value, value with its last character bumped),
    which is exactly the strings starting with `value` in SQLite's byte order.
    PostgreSQL answers LIKE 'value%' from the `_like` (pattern_ops) index Django
    creates for indexed text columns; a range there would follow the collation,
    not the bytes, and miss rows.
    """
    from django.db import connection

    if connection.vendor != "sqlite" or not value:
        return Q(**{f"{field_name}__startswith": value})
    upper = value[:-1] + chr(ord(value[-1]) + 1)
    return Q(**{f"{field_name}__gte": value, f"{field_name}__lt": upper})


def name_q(value: str, *, model) -> Q:
    """Rows of `model` whose case-folded name starts with `value` (indexed), or
    contains it when the user starts the term with "*" (e.g. "*22.04"), found by
    the trigram index. 400 for "*" with fewer than MIN_CONTAINS characters."""
    value = value.strip()
    if value.startswith(CONTAINS_MARK):
        return name_contains_q(model, contains_term(value))
    return prefix_q("name_key", value.casefold())


def name_scan_q(value: str) -> Q:
    """The same rows as name_q("*text"), asked without the index: for a walk of
    the list that stops at a page, when the text matches densely."""
    return Q(name_key__contains=contains_term(value).casefold())


def contains_term(value: str) -> str:
    """The text of a "*text" search; 400 when it is too short for the trigram index.

    One or two characters would match most names anyway, and no index can answer
    them: each view would test every row of the mirror."""
    term = value.strip().lstrip(CONTAINS_MARK).strip()
    if len(term) < MIN_CONTAINS:
        raise BadRequest(
            gettext(
                "A search anywhere in the name (*text) needs at least %(count)d characters;"
                " without the * the name is matched from its start."
            )
            % {"count": MIN_CONTAINS}
        )
    return term
