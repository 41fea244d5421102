"""The page of every bulk delete: GET confirms what will be deleted and what is
skipped, and why; POST starts one job that deletes them in batches. Ticked rows
are listed one by one; "all matching" (any number) is confirmed with counts per
reason and a sample, and its job carries the filter.

An app declares its page (`DeletePage`: its BulkDelete and its words) and its
delete view reads which rows the request names (`Chosen`), then calls
`bulk_delete_view`. One template: portal/bulk_delete_confirm.html.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext

from portal.bulk.delete import BulkDelete
from portal.bulk.matching import CONFIRMED_PARAM, confirmed_at_from, confirmed_param
from portal.http import param_id
from portal.jobs import job_repeated
from portal.models import Job, Project
from portal.texts import render as render_text

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

TEMPLATE = "portal/bulk_delete_confirm.html"

# Request parameters a confirmation does not post on: the form's own, the list's
# paging and job banner, and what the confirmation adds itself.
NOT_CARRIED = {"csrfmiddlewaretoken", "idempotency_key", "page", "job", "upto", CONFIRMED_PARAM}


@dataclass(frozen=True)
class DeletePage:
    """One list's bulk delete page: the resource's BulkDelete and what the page
    says. The messages are formatted with `count` (rows), `reasons` (the skipped
    ones, named) and `job` (its number); "" says nothing (the list the user goes
    back to shows the job)."""

    spec: BulkDelete
    consequence: StrOrPromise  # after "3 instances will be deleted.": for one or many
    nothing_ticked: StrOrPromise  # every ticked row is skipped
    nothing_matching: StrOrPromise  # every matching row is skipped
    # `%`-formatted with count and job: an ngettext_lazy keyed on "count" says it
    # for one or many ("Deleting 1 instance", "Deleting 3 instances").
    started_ticked: StrOrPromise = ""
    started_matching: StrOrPromise = ""


@dataclass(frozen=True)
class Chosen:
    """Which rows a request names, and where it came from, as the app reads it."""

    rows: Any  # ticked rows (a list), or every matching one (a queryset, never read whole)
    all_matching: bool
    filters: list[tuple[str, str]]  # the list's filters, for an "all matching" job
    back: str  # the list the user came from
    job_url: Callable[[Job], str]  # where the user follows a job started here
    project: Project | None = None  # the page's project, for a one-project list
    ordered: QuerySet | None = None  # `rows` in the list's order (default: as they come)
    walk: QuerySet | None = None  # the whole list in that order (see matching_plan)


def carried_params(data) -> list[tuple[str, str]]:
    """The selection (filters, ids, all_matching...) a confirmation posts on."""
    return [
        (key, value) for key, values in data.lists() if key not in NOT_CARRIED for value in values
    ]


def list_filters(data, *, scope: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The list's filters among a request's parameters: not the selection, nor the
    parameters in `scope`, which name the page (a project's list) and not a filter."""
    skip = {"selected", "all_matching", *scope}
    return [(key, value) for key, value in carried_params(data) if key not in skip]


def bulk_delete_view(request, page: DeletePage, chosen: Chosen) -> HttpResponse:
    """GET: the confirmation of `chosen` (ticked rows listed, or "all matching"
    counted). POST: the job, once per form (its idempotency key)."""
    data = request.POST if request.method == "POST" else request.GET
    spec = page.spec
    key = data.get("idempotency_key", "")
    repeated = job_repeated(actor=request.user, key=key) if request.method == "POST" else None
    if repeated is not None:
        return redirect(chosen.job_url(repeated))
    context = {
        "plan": None,
        "back": chosen.back,
        "carried": carried_params(data),
        "action": request.path,
        "title": gettext("Delete %(nouns)s") % {"nouns": gettext(spec.nouns)},
        "nouns": f"{gettext(spec.noun)},{gettext(spec.nouns)}",
        "consequence": page.consequence,
    }
    if not (chosen.rows.exists() if chosen.all_matching else chosen.rows):
        messages.error(
            request,
            gettext("Select at least one %(noun)s to delete.") % {"noun": gettext(spec.noun)},
        )
        return render(request, TEMPLATE, context, status=400)
    if chosen.all_matching:
        return _delete_matching(request, page, chosen, context)
    if request.method == "GET":
        context["plan"] = spec.plan(rows=chosen.rows, actor=request.user)
        return render(request, TEMPLATE, context)
    job, plan = spec.request(rows=chosen.rows, actor=request.user, idempotency_key=key)
    if job is None:
        context["plan"] = plan
        reasons = "; ".join(f"{row.name} ({render_text(reason)})" for row, reason in plan.skipped)
        messages.error(
            request, page.nothing_ticked.format(count=len(plan.skipped), reasons=reasons)
        )
        return render(request, TEMPLATE, context, status=409)
    if page.started_ticked:
        messages.success(
            request, page.started_ticked % {"count": len(plan.deletable), "job": job.pk}
        )
    return redirect(chosen.job_url(job))


def _delete_matching(request, page: DeletePage, chosen: Chosen, context: dict) -> HttpResponse:
    """ "All matching": GET counts and samples; POST records the job with the filter,
    the bound and the moment the confirmation showed (`upto`: no row synced after
    it; `confirmed`: no row changed since)."""
    data = request.POST if request.method == "POST" else request.GET
    spec = page.spec
    if request.method == "GET":
        upto = spec.bound()
        confirmed_at = timezone.now()  # before reading: what the mirror learns later is "since"
        context["matching"] = spec.matching_plan(
            rows=chosen.rows, actor=request.user, upto=upto, ordered=chosen.ordered,
            walk=chosen.walk,
        )  # fmt: skip
        context["confirmed_at"] = confirmed_at
        context["carried"] = [
            *context["carried"],
            ("upto", str(upto)),
            confirmed_param(confirmed_at),
        ]
        return render(request, TEMPLATE, context)
    upto = param_id(data, "upto") or spec.bound()
    confirmed_at = confirmed_at_from(data)
    job, plan = spec.matching_request(
        data=chosen.filters, project=chosen.project, actor=request.user, upto=upto,
        confirmed_at=confirmed_at, rows=chosen.rows, idempotency_key=data.get("idempotency_key", ""),
    )  # fmt: skip
    if job is None:
        messages.error(request, page.nothing_matching)
        context["matching"] = plan
        context["confirmed_at"] = confirmed_at
        return render(request, TEMPLATE, context, status=409)
    if page.started_matching:
        messages.success(request, str(page.started_matching).format(job=job.pk))
    return redirect(chosen.job_url(job))
