from portal.form_rendering import ALL_SITES_ATTRIBUTE
from portal.models import Site


def sites(request):
    """Unreachable sites, for the notice every page shows. Read when the page draws
    the notice, after its view ran: a view that read every site already (a filter's
    site choices, portal.form_rendering.site_choices) leaves them on the request, and
    the notice picks the unreachable ones from those instead of asking again."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}

    def unreachable_sites() -> list[Site]:
        every = getattr(request, ALL_SITES_ATTRIBUTE, None)
        if every is not None:
            return [site for site in every if site.unreachable_since is not None]
        return list(Site.objects.filter(unreachable_since__isnull=False))

    return {"unreachable_sites": unreachable_sites}  # a callable: the template calls it
