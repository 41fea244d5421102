from portal.models import Site


def sites(request):
    """Unreachable sites, for the notice every page shows."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"unreachable_sites": Site.objects.filter(unreachable_since__isnull=False)}
