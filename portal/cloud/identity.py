"""Keystone: the projects of a site."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import keystoneauth1.session
import openstack.config
from django.conf import settings

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.types import CloudProject
from portal.cloud.util import answer_note

if TYPE_CHECKING:
    from openstack.identity.v3._proxy import Proxy as IdentityV3


def project_list(site: str) -> list[CloudProject]:
    with translate_errors(site):
        conn = connection_for(site)
        # Keystone v2 (no `projects`) is long gone: every site speaks v3.
        identity = cast("IdentityV3", conn.identity)
        return [CloudProject(id=p.id, name=p.name) for p in identity.projects()]


def site_probe(site: str, *, timeout: float) -> bool:
    """Whether the site answers at all within `timeout` seconds: one unauthenticated
    GET of its Keystone endpoint (the version document). Any HTTP answer counts, even
    an error: it is the silence of a hung or unreachable site this asks about, and it
    costs a worker at most `timeout`, not OPENSTACK_TIMEOUT per call of a whole step."""
    try:
        config = openstack.config.OpenStackConfig(
            config_files=[settings.OS_CLIENT_CONFIG_FILE], load_envvars=False
        )
        auth_url = config.get_one(cloud=site).config["auth"]["auth_url"]
        keystoneauth1.session.Session().get(
            auth_url, timeout=timeout, authenticated=False, raise_exc=False
        )
    except Exception:  # timed out, refused, no such clouds.yaml entry: no answer
        return False
    answer_note(site)
    return True
