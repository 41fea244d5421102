"""Which clouds.yaml entries are sites (PORTAL_SITES), and their rows."""

from __future__ import annotations

from django.conf import settings

from portal.models import Site


def configured_sites(spec: str | None = None) -> list[tuple[str, str]]:
    """Parse "name=Display Name,other=Other" into [(name, display name)]."""
    spec = settings.PORTAL_SITES if spec is None else spec
    sites = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, display = item.partition("=")
        sites.append((name.strip(), (display or name).strip()))
    return sites


def sites_ensure() -> list[Site]:
    """Create or rename the Site rows for the configured sites."""
    rows = []
    for name, display in configured_sites():
        site, _ = Site.objects.update_or_create(name=name, defaults={"display_name": display})
        rows.append(site)
    return rows


def network_refs(text: str) -> list[str]:
    """ "a, b" → ["a", "b"]: network names or ids, in order, without blanks."""
    return [ref.strip() for ref in (text or "").split(",") if ref.strip()]


def site_networks(site_name: str, spec: str | None = None) -> list[str]:
    """The networks (names or ids) PORTAL_SITE_NETWORKS names for a site:
    "devcloud=public;devcloud2=net-a,net-b"."""
    spec = settings.PORTAL_SITE_NETWORKS if spec is None else spec
    for item in spec.split(";"):
        name, _, refs = item.partition("=")
        if name.strip() == site_name:
            return network_refs(refs)
    return []


def site_shelve_refusal(site_name: str, spec: str | None = None) -> str:
    """Why the site does not allow shelving (park/resume), or "" where it does:
    PORTAL_SITE_NO_SHELVE="devcloud2=Shelving is off at Berlin;other=reason"."""
    spec = settings.PORTAL_SITE_NO_SHELVE if spec is None else spec
    for item in spec.split(";"):
        name, _, reason = item.partition("=")
        if name.strip() == site_name:
            return reason.strip() or f"{site_name} does not allow parking machines (shelving)."
    return ""
