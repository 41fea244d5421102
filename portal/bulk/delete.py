"""One resource's bulk delete, declared once (the shape of NetBox's BulkDeleteView).

A `BulkDelete` names what differs between resources: the model and the job
kind, the rules that skip a row and their words, the selector that reads a
list's filter again, and the cloud delete and refresh. The rest comes from it,
the same for every resource:

- the rules, as filters (portal.bulk.matching): the confirmation of ticked rows
  and of "all matching" and every batch of the job ask the same ones, in this
  order (the same rules as every other action);
- ticked rows: a plan that lists each row, and a job that lists their ids;
- "all matching": a counted plan, and a job that carries the filter and the
  confirmation's moment, not the ids;
- the job kind: a delete step in batches, then a summary that fails the job when
  every delete it tried failed.

The page that asks for it is portal.bulk.views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.http import QueryDict

from portal.access import projects_visible_to
from portal.bulk.matching import (
    MatchingPlan,
    being_deleted_q,
    busy_q,
    changed_since_refusals,
    delete_matching_in_batches,
    delete_pending,
    matching_confirmed_at,
    matching_params,
    matching_plan,
    matching_summary,
    matching_title,
    permission_refusals,
    refusal_annotate,
    unreachable_refusals,
)
from portal.jobs import (
    JobKind,
    Step,
    StepFailed,
    Wait,
    delete_in_batches,
    deletion_summary,
    job_create,
)
from portal.models import Job, Project, Site

# Why a row outside the actor's projects is skipped, whatever it is.
OUTSIDE = "not in one of your projects"


@dataclass(frozen=True)
class DeletePlan:
    """Ticked rows (a few hundred at most), split into what the actor may delete
    now and what is skipped, with the reason shown to them."""

    deletable: list[Any]
    skipped: list[tuple[Any, str]]


@dataclass(kw_only=True)
class BulkDelete:
    """What one resource's bulk delete declares. Not frozen: a test may lower
    `batch` to see the job run in several steps."""

    model: type[Model]  # the mirror row: Server, Snapshot
    kind: str  # the job kind: "instances.delete"
    key: str  # where a job of ticked rows lists them: params["servers"]
    target: str  # "server" or "image": the job's target field, and what busy jobs name
    noun: str  # "instance"
    nouns: str  # "instances"
    not_yours: str  # why a member may not delete a row someone else created
    rules: tuple[tuple[str, Q], ...]  # the resource's own rules, asked after the permission
    busy: str  # why a row an unfinished portal job acts on is skipped
    matching: Callable[..., QuerySet]  # (data=, projects=): what a list's filter matches now
    cloud_delete: Callable[[str, str], object]  # (site name, OpenStack id)
    refresh: Callable[[Site, str], object]  # (site, OpenStack id): the mirror learns the outcome
    batch: int  # rows per task run: each is one or two HTTP calls, well inside the time limit
    # A ticked row's delete, when it needs a check of its own (default: cloud_delete).
    listed_delete: Callable[[str, str], object] | None = None
    # Runs after the deletes, before the summary (e.g. refresh the quota they freed).
    after_deletes: Callable[[Job], object] | None = None
    # The order a confirmation lists ticked rows in (default: the model's).
    plan_order: tuple[str, ...] = ()

    # --- The rules --------------------------------------------------------------

    def refusals(
        self,
        actor,
        *,
        seen: bool = False,
        job: Job | None = None,
        confirmed_at: datetime | None = None,
    ) -> list[tuple[str, Q]]:
        """[(reason, condition)]: why `actor` may not delete a row now. `seen`: the
        rows are from the actor's own list (see permission_refusals). Inside a delete
        `job`, only older delete jobs count as "already being deleted" (two
        overlapping jobs: the first one deletes, the second skips). `confirmed_at`
        (or the "all matching" `job`'s): rows changed since are skipped."""
        refusals = permission_refusals(actor, seen=seen, outside=OUTSIDE, not_yours=self.not_yours)
        refusals.extend(self.rules)
        deleting = self.being_deleted_q(before=job)
        if deleting is not None:
            refusals.append(("already being deleted", deleting))
        busy = busy_q(target=self.target)
        if busy is not None:
            refusals.append((self.busy, busy))
        if job is not None:
            confirmed_at = matching_confirmed_at(job)
        return refusals + changed_since_refusals(confirmed_at) + unreachable_refusals()

    def being_deleted_q(self, *, before: Job | None = None) -> Q | None:
        """The rows unfinished delete jobs (older than `before`) will still delete,
        as a filter; None when no such job runs."""
        return being_deleted_q(kind=self.kind, key=self.key, pending=self.pending, before=before)

    def being_deleted(self, rows) -> set[int]:
        """Pks of those rows (a page of them) an unfinished delete job will delete."""
        deleting = self.being_deleted_q()
        if deleting is None or not rows:
            return set()
        found = self.model._default_manager.filter(deleting, pk__in=[row.pk for row in rows])
        return set(found.values_list("pk", flat=True))

    # --- Ticked rows ------------------------------------------------------------

    def plan(self, *, rows, actor) -> DeletePlan:
        """Split the ticked rows into what the actor may delete now and what is
        skipped, with the reason."""
        pks = [row.pk for row in rows]
        found = self.model._default_manager.filter(pk__in=pks).select_related(
            "project", "site", "created_by"
        )
        found = refusal_annotate(found, self.refusals(actor))
        if self.plan_order:
            found = found.order_by(*self.plan_order)
        deletable, skipped = [], []
        for row in found:
            # `refusal` is the column refusal_annotate adds.
            refusal = row.refusal  # type: ignore[attr-defined]
            if refusal:
                skipped.append((row, refusal))
            else:
                deletable.append(row)
        return DeletePlan(deletable, skipped)

    def request(self, *, rows, actor, idempotency_key: str = "") -> tuple[Job | None, DeletePlan]:
        """Record one job that deletes every deletable row (in batches); report the
        skipped. None when nothing is left to delete."""
        plan = self.plan(rows=rows, actor=actor)
        if not plan.deletable:
            return None, plan
        only = plan.deletable[0]
        one_project = len({row.project_id for row in plan.deletable}) == 1
        one_site = len({row.site_id for row in plan.deletable}) == 1
        lone = only.openstack_id if len(plan.deletable) == 1 else ""
        job = job_create(
            kind=self.kind,
            actor=actor,
            idempotency_key=idempotency_key,
            project=only.project if one_project else None,
            site=only.site if one_site else None,
            **{f"target_{self.target}_id": lone},
            params={
                self.key: [
                    {"id": row.openstack_id, "name": row.name, "site_id": row.site_id}
                    for row in plan.deletable
                ],
                "skipped": [{"name": row.name, "reason": reason} for row, reason in plan.skipped],
            },
        )
        return job, plan

    # --- All matching: the job carries the filter (see portal.bulk.matching) ------

    def bound(self) -> int:
        """The highest row id now: a job confirmed now never touches a row synced
        later (made after the confirmation), whatever it matches."""
        return self.model._default_manager.order_by("-pk").values_list("pk", flat=True).first() or 0

    def matching_plan(
        self,
        *,
        rows: QuerySet,
        actor,
        upto: int,
        ordered: QuerySet | None = None,
        walk: QuerySet | None = None,
        confirmed_at: datetime | None = None,
    ) -> MatchingPlan:
        """Counts of what deleting every row of `rows` (a list's filter, from the
        actor's own list) would delete and skip, by reason, and a sample in the
        list's order (`ordered`, default `rows`; `walk`: the whole list in that
        order, see matching_plan). `confirmed_at`: when the confirmation was shown,
        once it has been (rows changed since are skipped)."""
        refusals = self.refusals(actor, seen=True, confirmed_at=confirmed_at)
        ordered = rows if ordered is None else ordered
        return matching_plan(rows, refusals, ordered=ordered, upto=upto, walk=walk)

    def matching_request(
        self,
        *,
        data,
        actor,
        upto: int,
        confirmed_at: datetime,
        rows: QuerySet,
        project: Project | None = None,
        idempotency_key: str = "",
    ) -> tuple[Job | None, MatchingPlan]:
        """Record one job that deletes, in batches, every row the list with these
        filters (`data`, its query as pairs) showed when the confirmation was shown
        (`confirmed_at`), up to row `upto`, and that is unchanged since. The page's
        scope is kept: its `project`, or the projects the actor saw (every one for a
        superuser)."""
        upto = min(upto, self.bound())
        plan = self.matching_plan(rows=rows, actor=actor, upto=upto, confirmed_at=confirmed_at)
        if not plan.will_delete:
            return None, plan
        if project is not None:
            scope = [project.pk]
        elif actor.is_superuser:
            scope = None
        else:
            scope = sorted(projects_visible_to(actor).values_list("pk", flat=True))
        job = job_create(
            kind=self.kind,
            actor=actor,
            idempotency_key=idempotency_key,
            project=project,
            params=matching_params(
                data=data, scope=scope, upto=upto, confirmed_at=confirmed_at, plan=plan
            ),
        )
        return job, plan

    def selection(self, job: Job) -> QuerySet:
        """What an "all matching" job's filter matches now, within its scope and bound."""
        spec = job.params["matching"]
        data = QueryDict(mutable=True)
        for key, value in spec["query"]:
            data.appendlist(key, value)
        rows = self.matching(data=data, projects=spec["projects"])
        return rows.filter(pk__lte=spec["upto"])

    def pending(self, job: Job) -> QuerySet:
        """The rows an "all matching" job has still to look at (past its cursor) that
        its actor may delete: what other deletes count as "already being deleted"."""
        return delete_pending(self.selection(job), job)

    def rows_after(self, job: Job, after: int, size: int) -> list[dict]:
        """The next `size` rows of the job's selection after row `after`, in id order,
        each with the reason it is skipped now ("" when it is deleted): the rules,
        and any change since the confirmation."""
        rows = self.selection(job).filter(pk__gt=after).order_by("pk")
        rows = refusal_annotate(rows, self.refusals(job.actor, job=job))
        return [
            {"pk": pk, "id": openstack_id, "site_id": site_id, "name": name, "refusal": refusal}
            for pk, openstack_id, site_id, name, refusal in rows.values_list(
                "pk", "openstack_id", "site_id", "name", "refusal"
            )[:size]
        ]

    # --- The job ----------------------------------------------------------------

    def step_delete(self, job: Job) -> Wait | None:
        """Delete `batch` rows per run: the listed ones, or the next ones the job's
        filter matches (see delete_step)."""
        return delete_step(
            job, key=self.key, batch=self.batch,
            delete=lambda site, object_id: self.cloud_delete(site, object_id),
            listed_delete=self.listed_delete,
            refresh=lambda site, object_id: self.refresh(site, object_id),
            rows_after=lambda after, size: self.rows_after(job, after, size),
        )  # fmt: skip

    def step_summary(self, job: Job) -> None:
        """Sum up, and fail when every delete failed (delete_finish)."""
        if self.after_deletes is not None:
            self.after_deletes(job)
        delete_finish(job, key=self.key)

    def describe(self, job: Job) -> str:
        if "matching" in job.params:
            return matching_title(job, self.nouns)
        return f"Delete {len(job.params[self.key])} {self.noun}(s)"

    def job_kind(self) -> JobKind:
        """The job kind, for the app to register (job_kind_register)."""
        return JobKind(
            name=self.kind,
            steps=(
                Step("delete", f"Deleting the {self.nouns}", self.step_delete),
                Step("summary", "Summing up", self.step_summary, acts=False),
            ),
            describe=self.describe,
        )


# --- One way for every delete job kind ------------------------------------------


def delete_step(job: Job, *, key: str, batch: int, delete, refresh, rows_after, listed_delete=None):
    """The delete step of every delete job kind: the rows listed under
    params[key] (ticked ones: portal.jobs.delete_in_batches, through
    `listed_delete` when they need a check of their own), or the next rows the
    job's filter matches (`rows_after`: delete_matching_in_batches)."""
    if "matching" in job.params:
        return delete_matching_in_batches(
            job, rows_after=rows_after, delete=delete, refresh=refresh, batch=batch
        )
    return delete_in_batches(
        job, job.params[key], delete=listed_delete or delete, refresh=refresh, batch=batch
    )


def delete_finish(job: Job, *, key: str) -> dict:
    """The last step of every delete job kind: record what it deleted, what it
    skipped and why, and what failed and why (job.result, the same keys for both
    ways of choosing rows), then end the same way: the job fails when every
    delete it tried failed, and succeeds otherwise, with its failures named in
    the summary. A row skipped by the rules is not a failure: a job that only
    skipped succeeds and says why. `key`: where a ticked job lists its rows."""
    if "matching" in job.params:
        result = matching_summary(job)
    else:
        result = deletion_summary(job, job.params[key])
    if result["failed_count"] and not result["deleted_count"]:
        raise StepFailed(result["summary"])
    return result
