"""Project memberships from the identity provider's claim, at every sign-in.

The claim (PORTAL_OIDC_MEMBERSHIP_CLAIM, LS Login's `eduperson_entitlement`) is a
list of strings; those matching PORTAL_OIDC_MEMBERSHIP_PATTERN name a project (the
group `project`) and a role (the group `role`: admin or member, member when absent).
A project name means the portal projects of that name at every site: de.NBI's
project groups are named once for the whole federation, and a project with a quota
at two sites is the same group at both.

What the claim grants is added, what it grants with another role is changed, and
what the claim granted before but no longer does is removed. Only memberships the
claim made (source "oidc") are changed or removed; a membership made in the admin
(source "manual") is left as it is, whatever the claim says.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from portal.models import Membership, Project

log = logging.getLogger(__name__)

# Values already reported as not matching or naming an unknown project: a user signs in
# many times, and their unrelated entitlements (other federations' groups) would
# otherwise fill the log at every sign-in. Bounded: a process forgets after this many.
_REPORTED_MAX = 10_000
_reported: set[str] = set()


@dataclass
class MembershipChanges:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _report_once(key: str, message: str, *args: Any) -> None:
    if key in _reported:
        return
    if len(_reported) >= _REPORTED_MAX:
        _reported.clear()
    _reported.add(key)
    log.info(message, *args)


def roles_from_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Project name -> role, from the membership claim's values (admin wins when a
    project is named twice)."""
    values = claims.get(settings.PORTAL_OIDC_MEMBERSHIP_CLAIM) or []
    if isinstance(values, str):
        values = [values]
    pattern = re.compile(settings.PORTAL_OIDC_MEMBERSHIP_PATTERN)
    roles: dict[str, str] = {}
    for value in values:
        match = pattern.match(str(value))
        if match is None:
            _report_once(
                f"pattern:{value}", "OIDC: claim value %r does not match the pattern", value
            )
            continue
        groups = match.groupdict()
        role = groups.get("role") or Membership.Role.MEMBER
        if role not in Membership.Role.values:
            _report_once(f"role:{value}", "OIDC: claim value %r names no known role", value)
            continue
        project = groups["project"]
        if roles.get(project) != Membership.Role.ADMIN:
            roles[project] = role
    return roles


@transaction.atomic
def memberships_apply(*, user, claims: dict[str, Any]) -> MembershipChanges:
    """Make the user's claim-made memberships what the claim grants now."""
    roles = roles_from_claims(claims)
    projects = list(Project.objects.filter(name__in=roles).select_related("site"))
    for unknown in sorted(set(roles) - {project.name for project in projects}):
        _report_once(
            f"project:{unknown}", "OIDC: the claim names project %r, unknown here", unknown
        )
    wanted = {project.pk: (project, roles[project.name]) for project in projects}

    changes = MembershipChanges()
    for membership in Membership.objects.filter(user=user).select_related("project__site"):
        target = wanted.pop(membership.project_id, None)
        if membership.source != Membership.Source.OIDC:
            continue  # made in the admin: never the claim's to change
        label = f"{membership.project.name} ({membership.project.site.display_name})"
        if target is None:
            membership.delete()
            changes.removed.append(label)
        elif membership.role != target[1]:
            membership.role = target[1]
            membership.save(update_fields=["role"])
            changes.changed.append(label)
    for project, role in wanted.values():
        Membership.objects.create(
            user=user, project=project, role=role, source=Membership.Source.OIDC
        )
        changes.added.append(f"{project.name} ({project.site.display_name})")
    if changes.added or changes.changed or changes.removed:
        log.info(
            "OIDC: memberships of %s: added %s, changed %s, removed %s",
            user.get_username(),
            changes.added,
            changes.changed,
            changes.removed,
        )
    return changes
