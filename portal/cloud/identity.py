"""Keystone: the projects of a site."""

from __future__ import annotations

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.types import CloudProject


def project_list(site: str) -> list[CloudProject]:
    with translate_errors(site):
        conn = connection_for(site)
        return [CloudProject(id=p.id, name=p.name) for p in conn.identity.projects()]
