"""`{% url %}` as Django's, but remembering what it reversed.

A table page reverses the same few URL patterns for every row (a snapshot row
links to its delete, launch, copy and verify pages): about 160 reversals per
page, each a walk through the resolver's candidates with regex checks: 15 % of
the CPU of a table page (in-process, DEBUG off, 450 instances and 4,000
snapshots: the snapshot table went from 29.0 to 24.4 ms of CPU, the overview
from 21.4 to 18.1, an instance's page from 9.0 to 7.5). A URL depends only on the pattern, its arguments and what
the request-wide state says (URLconf, script prefix, language, current app), so
that state is part of the key (read once per template, so a `{% language %}`
block would need its own include) and the answer can be reused by any request
in the process. The cache is bounded: rows name objects by id, and a busy process
keeps the recent ones.

Registered as a template builtin after Django's own (config/settings.py), so
every template's `{% url %}` is this one; the syntax and errors are Django's.
"""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.conf import settings
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as django_url
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.translation import get_language

register = template.Library()

REMEMBERED_URLS = 4096


@lru_cache(maxsize=REMEMBERED_URLS)
def _reversed(view_name, args, kwargs, current_app, urlconf, prefix, language) -> str:
    # urlconf, prefix and language are only the key: reverse() reads the same
    # request-wide values itself.
    return reverse(view_name, args=args, kwargs=dict(kwargs), current_app=current_app)


def _request_state(context) -> tuple:
    """What else a URL depends on: the same for a whole render (read once per page,
    not once per link; the lookups are thread- and task-local)."""
    state = context.render_context.get(_request_state)
    if state is None:
        state = (get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), get_language())
        context.render_context[_request_state] = state
    return state


def url_reverse(context, view_name, args: list, kwargs: dict, current_app) -> str:
    key = (view_name, tuple(args), tuple(sorted(kwargs.items())), current_app)
    try:
        return _reversed(*key, *_request_state(context))
    except TypeError:  # an argument that cannot be a key (unhashable): not remembered
        return reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)


class RememberedURLNode(URLNode):
    def render(self, context):
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        url = ""
        try:
            url = url_reverse(context, view_name, args, kwargs, current_app)
        except NoReverseMatch:
            if self.asvar is None:
                raise
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser, token):
    node = django_url(parser, token)
    return RememberedURLNode(node.view_name, node.args, node.kwargs, node.asvar)
