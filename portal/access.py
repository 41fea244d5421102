"""Who may see and do what. Every view asks here; nothing decides inline.

Rules: a superuser sees and acts on everything (facility view). A project
member sees everything in the project and acts on what they created through
the portal; a project admin acts on everything in the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Model, Q, QuerySet
from django.shortcuts import get_object_or_404

from portal.models import Membership, Project

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Row = TypeVar("Row", bound=Model)


def projects_visible_to(user: User) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def projects_visible_list(user: User) -> list[Project]:
    """`projects_visible_to` read once, as a list (by name), for a page that needs the
    projects more than once: their ids, their sites, the filter's choices. A member's
    roles come in the same query and are kept for `project_role`, which the page's
    rows ask next (one query for all four where there were four)."""
    if user.is_superuser:
        return list(Project.objects.all())
    # One membership per user and project (membership_unique): no duplicates. By name,
    # as Project's own ordering lists them.
    memberships = Membership.objects.filter(user=user).select_related("project")
    memberships = memberships.order_by("project__name")
    user._portal_project_roles = {m.project_id: m.role for m in memberships}  # type: ignore[attr-defined]
    return [membership.project for membership in memberships]


def in_visible_projects(queryset: QuerySet[Row], user: User) -> QuerySet[Row]:
    """The rows of `queryset` (anything with a `project`) in the user's projects;
    all of them for a superuser. Every list of servers, images or snapshots goes
    through here."""
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=projects_visible_to(user))


def project_role(user: User, project: Project | None) -> str | None:
    """ "admin", "member" or None. Superusers count as admins everywhere."""
    if project is None:
        return "admin" if user.is_superuser else None
    if user.is_superuser:
        return Membership.Role.ADMIN
    return _roles_of(user).get(project.pk)


def _roles_of(user: User) -> dict[int, str]:
    """{project id: role}, read once per user object: a table asks for every row,
    and a request's user object lives only as long as the request."""
    roles = getattr(user, "_portal_project_roles", None)
    if roles is None:
        roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
        user._portal_project_roles = roles  # type: ignore[attr-defined]
    return roles


def can_see(user: User, project: Project | None) -> bool:
    return project_role(user, project) is not None


def can_act_on(user: User | None, *, project: Project | None, created_by_id: int | None) -> bool:
    """May the user act on an object of `project` that `created_by_id` created?
    A job asks again when it runs: an account deleted (None) or deactivated since
    acts on nothing, as in `action_refusals`."""
    if user is None or not user.is_active:
        return False
    role = project_role(user, project)
    if role == Membership.Role.ADMIN:
        return True
    return role == Membership.Role.MEMBER and created_by_id is not None and created_by_id == user.pk


def action_refusals(user: User | None) -> list[tuple[str, Q]]:
    """`can_act_on` as filters over rows with `project` and `created_by`, for bulk
    actions that cannot ask row by row: [(code, condition)] in the order asked,
    "outside" (not in one of the user's projects) then "not_yours" (a member,
    and someone else made it). A row matching neither the user may act on.
    A job runs later than its request: an account deleted or deactivated since
    acts on nothing."""
    if user is None or not user.is_active:
        return [("outside", Q(pk__isnull=False))]
    if user.is_superuser:
        return []
    roles = _roles_of(user)
    if not roles:
        return [("outside", Q(pk__isnull=False))]
    refusals = [("outside", ~Q(project__in=sorted(roles)))]
    members = sorted(pk for pk, role in roles.items() if role == Membership.Role.MEMBER)
    if members:
        refusals.append(("not_yours", Q(project__in=members) & ~Q(created_by=user)))
    return refusals


def get_visible_or_404(queryset: QuerySet[Row], user: User, **lookup: Any) -> Row:
    """The one row of `queryset` (anything with a `project`) matching `lookup`,
    or 404 when there is none *or* it lies in a project the user cannot see: the
    same answer either way, so an outsider cannot probe which ids exist in other
    projects. Acting on what one can see but may not change stays a 403 (it
    tells nothing new)."""
    return get_object_or_404(in_visible_projects(queryset, user), **lookup)


def get_project_for_user(user: User, project_id: int) -> Project:
    """The project, or 404 if it does not exist or the user is not in it."""
    return get_object_or_404(projects_visible_to(user).select_related("site"), pk=project_id)
