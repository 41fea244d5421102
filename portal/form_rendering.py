"""A form renderer that remembers the widgets it drew.

The filter forms above the tables are drawn on every page and every htmx refresh,
nearly always in the same few states (empty, or a filter or two), and Django draws
each widget and each option of a select or a radio list from a template: 12-16 %
of a table page's CPU. Most of that is the same HTML again.

What is remembered is keyed by everything the widget's template reads: the template
and its whole context (name, value, attributes, every option with its label and
whether it is selected) as JSON, and the language. A widget whose choices change
(a new project, a renamed site) has another key, so nothing needs invalidating,
and two users see the same HTML only when their widgets are the same in every
respect. Only Django's widget templates are remembered (their context is plain
values); a whole form or field is drawn as before. The memory is per process and
bounded (least recently used entries go first)."""

from __future__ import annotations

import json
from collections import OrderedDict
from threading import Lock

from django.forms.renderers import DjangoTemplates
from django.utils.translation import get_language

MAX_ENTRIES = 2000


class RememberingRenderer(DjangoTemplates):
    def __init__(self):
        super().__init__()
        self._drawn: OrderedDict[str, str] = OrderedDict()
        self._lock = Lock()  # gunicorn runs 4 threads per process

    def render(self, template_name, context, request=None):
        if not template_name.startswith("django/forms/widgets/") or set(context) != {"widget"}:
            return super().render(template_name, context, request=request)
        try:
            key = json.dumps([template_name, get_language(), _plain(context)])
        except TypeError:  # not plain values: drawn every time
            return super().render(template_name, context, request=request)
        with self._lock:
            html = self._drawn.get(key)
            if html is not None:
                self._drawn.move_to_end(key)
                return html
        html = super().render(template_name, context, request=request)
        with self._lock:
            self._drawn[key] = html
            if len(self._drawn) > MAX_ENTRIES:
                self._drawn.popitem(last=False)
        return html


def _plain(value):
    """The context as JSON values. A text the code marked safe stays apart from the
    same text typed by a user (the template escapes one and not the other); lazy
    texts, ModelChoiceIteratorValue (its str is the value) and dates as their text.
    Anything else raises TypeError: its str might not say all the template reads."""
    from datetime import date, datetime, time
    from decimal import Decimal

    from django.forms.models import ModelChoiceIteratorValue
    from django.utils.functional import Promise
    from django.utils.safestring import SafeData

    if isinstance(value, SafeData):
        return ["safe", str(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return sorted([str(k), _plain(v)] for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    if isinstance(value, Promise | ModelChoiceIteratorValue | datetime | date | time | Decimal):
        return [type(value).__name__, str(value)]
    raise TypeError(type(value).__name__)


def choice_objects(field) -> list:
    """The objects a ModelChoiceField offers, read once: the field keeps them as its
    choices, so drawing the form does not ask the database again for a list the page
    also shows (the sites, as columns or sync times)."""
    from django.forms import ChoiceField

    # iter(): list() of the iterator itself would ask its len() first, a COUNT query.
    choices = list(iter(field.choices))
    # Django's own setter: django-filter's would wrap the list in its lazy iterator.
    vars(ChoiceField)["choices"].fset(field, choices)
    return [value.instance for value, _label in choices if value != ""]


# Where a page keeps every site it read (site_choices), for the notice of unreachable
# sites on every page (operations.context_processors): one read of the sites, not two.
ALL_SITES_ATTRIBUTE = "portal_all_sites"


def site_choices(request, field) -> list:
    """`choice_objects` of a filter's site field; when the field offers every site,
    the list is kept on the request for the unreachable-sites notice."""
    sites = choice_objects(field)
    if not field.queryset.query.has_filters():
        setattr(request, ALL_SITES_ATTRIBUTE, sites)
    return sites


def choices_prime(field, objects) -> None:
    """Give a ModelChoiceField the choices it would read from its queryset, made from
    `objects` the page has read already (the same rows, in the same order: the
    caller's promise). Validation still asks the queryset for a submitted value."""
    from django.forms import ChoiceField

    iterator = field.iterator(field)
    empty = [("", field.empty_label)] if field.empty_label is not None else []
    vars(ChoiceField)["choices"].fset(field, empty + [iterator.choice(obj) for obj in objects])
