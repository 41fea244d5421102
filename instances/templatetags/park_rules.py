"""The park rules for templates: `{% load park_rules %}`, then `server|shelve_refusal`
(why the site does not allow parking, or "") and `server|park_frees`."""

from django import template

from instances.park import frees_text
from portal.sites import site_shelve_refusal

register = template.Library()


@register.filter
def shelve_refusal(server) -> str:
    return site_shelve_refusal(server.site.name)


@register.filter
def park_frees(server) -> str:
    return frees_text(server)
