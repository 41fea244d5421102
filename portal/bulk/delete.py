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
- the job kind (a `Kind` class, built by `job_kind()`): a delete step in batches,
  then a summary that fails the job when every delete it tried failed.

The page that asks for it is portal.bulk.views.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from datetime import datetime
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.http import QueryDict
from django.utils.translation import gettext, gettext_noop

from portal import cloud
from portal.access import projects_visible_to
from portal.bulk.matching import (
    MatchingPlan,
    being_deleted_q,
    busy_q,
    changed_since_refusals,
    confirmed_at_of,
    delete_matching_in_batches,
    delete_pending,
    delete_summary_text,
    matching_params,
    matching_plan,
    matching_summary,
    matching_title,
    permission_refusals,
    refusal_annotate,
    unreachable_refusals,
)
from portal.jobs import (
    BadJobData,
    Done,
    Kind,
    Step,
    StepContext,
    StepFailed,
    Wait,
)
from portal.models import Job, Project, Site
from portal.texts import say, text, word

# Why a row outside the actor's projects is skipped, whatever it is.
OUTSIDE = gettext_noop("not in one of your projects")


@dataclass(frozen=True)
class DeletePlan:
    """Ticked rows (a few hundred at most), split into what the actor may delete
    now and what is skipped, with the reason shown to them."""

    deletable: list[Any]
    skipped: list[tuple[Any, str]]


@dataclass
class DeleteState:
    """What a delete job's steps record (Job.state). A field left None is not stored."""

    # Ticked rows: each one's outcome by OpenStack id, "deleted" or "failed: why".
    outcomes: dict[str, str] | None = None
    # All matching: the last row id looked at, and counts (and a few names) of the
    # rows deleted, failed ("" as the reason) and skipped, by reason.
    cursor: int | None = None
    deleted: int | None = None
    deleted_names: dict[str, list[str]] | None = None
    failed: int | None = None
    failed_names: dict[str, list[str]] | None = None
    skipped: dict[str, int] | None = None
    skipped_names: dict[str, list[str]] | None = None


def _one_form(params) -> None:
    """A delete job's params hold one of the two forms, never both nor neither."""
    if (params.matching is None) == (params.listed is None):
        raise BadJobData("a delete job lists its rows or carries a filter, not both nor neither")


def delete_params(key: str) -> type:
    """The Params of a delete kind whose ticked rows are listed under `key` (params
    ["servers"]): either form, with the stored keys each form has always had."""
    return make_dataclass(
        f"Delete{key.title()}Params",
        [
            # Ticked rows: [{"id", "name", "site_id"}], and the skipped [{"name", "reason"}].
            (key, list[dict] | None, field(default=None)),
            ("skipped", list[dict] | None, field(default=None)),
            # All matching: the filter and scope (see portal.bulk.matching.matching_params),
            # and the count and filters in words the confirmation showed.
            ("matching", dict | None, field(default=None)),
            ("expected", str | None, field(default=None)),
            ("filters", str | None, field(default=None)),
        ],
        namespace={
            "listed": property(lambda self: getattr(self, key)),
            "__post_init__": _one_form,
        },
    )


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
    # Runs after the deletes, before the summary, with the job's project (None for
    # several), e.g. to refresh the quota they freed.
    after_deletes: Callable[[Project | None], object] | None = None
    # The order a confirmation lists ticked rows in (default: the model's).
    plan_order: tuple[str, ...] = ()
    _kind: type[Kind] | None = field(default=None, init=False, repr=False)

    # --- The rules --------------------------------------------------------------

    def refusals(
        self,
        actor,
        *,
        seen: bool = False,
        job: int | None = None,
        confirmed_at: datetime | None = None,
    ) -> list[tuple[str, Q]]:
        """[(reason, condition)]: why `actor` may not delete a row now. `seen`: the
        rows are from the actor's own list (see permission_refusals). Inside a delete
        `job` (its pk), only older delete jobs count as "already being deleted" (two
        overlapping jobs: the first one deletes, the second skips). `confirmed_at`:
        rows changed since are skipped."""
        refusals = permission_refusals(actor, seen=seen, outside=OUTSIDE, not_yours=self.not_yours)
        refusals.extend(self.rules)
        deleting = self.being_deleted_q(before=job)
        if deleting is not None:
            refusals.append(("already being deleted", deleting))
        busy = busy_q(target=self.target)
        if busy is not None:
            refusals.append((self.busy, busy))
        return refusals + changed_since_refusals(confirmed_at) + unreachable_refusals()

    def being_deleted_q(self, *, before: int | None = None) -> Q | None:
        """The rows unfinished delete jobs (older than the job `before`, a pk) will
        still delete, as a filter; None when no such job runs."""
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
        kind = self.job_kind()
        job = kind.create(
            actor=actor,
            idempotency_key=idempotency_key,
            project=only.project if one_project else None,
            site=only.site if one_site else None,
            **{f"target_{self.target}_id": lone},
            params=kind.Params(
                **{
                    self.key: [
                        {"id": row.openstack_id, "name": row.name, "site_id": row.site_id}
                        for row in plan.deletable
                    ],
                    "skipped": [
                        {"name": row.name, "reason": reason} for row, reason in plan.skipped
                    ],
                }
            ),
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
        kind = self.job_kind()
        job = kind.create(
            actor=actor,
            idempotency_key=idempotency_key,
            project=project,
            params=kind.Params(
                **matching_params(
                    data=data, scope=scope, upto=upto, confirmed_at=confirmed_at, plan=plan
                )
            ),
        )
        return job, plan

    def selection(self, job: Job) -> QuerySet:
        """What an "all matching" job's filter matches now, within its scope and bound."""
        return self.matched(job.params["matching"])

    def matched(self, spec: dict) -> QuerySet:
        """What a job's params["matching"] matches now, within its scope and bound."""
        data = QueryDict(mutable=True)
        for key, value in spec["query"]:
            data.appendlist(key, value)
        rows = self.matching(data=data, projects=spec["projects"])
        return rows.filter(pk__lte=spec["upto"])

    def pending(self, job: Job) -> QuerySet:
        """The rows an "all matching" job has still to look at (past its cursor) that
        its actor may delete: what other deletes count as "already being deleted"."""
        return delete_pending(self.selection(job), job)

    def rows_after(self, ctx: StepContext, after: int, size: int) -> list[dict]:
        """The next `size` rows of the job's selection after row `after`, in id order,
        each with the reason it is skipped now ("" when it is deleted): the rules,
        and any change since the confirmation."""
        spec = ctx.params.matching
        rows = self.matched(spec).filter(pk__gt=after).order_by("pk")
        refusals = self.refusals(ctx.actor, job=ctx.job_id, confirmed_at=confirmed_at_of(spec))
        rows = refusal_annotate(rows, refusals)
        return [
            {"pk": pk, "id": openstack_id, "site_id": site_id, "name": name, "refusal": refusal}
            for pk, openstack_id, site_id, name, refusal in rows.values_list(
                "pk", "openstack_id", "site_id", "name", "refusal"
            )[:size]
        ]

    # --- The job ----------------------------------------------------------------

    def step_delete(self, ctx: StepContext) -> Wait | None:
        """Delete `batch` rows per run: the listed ones, or the next ones the job's
        filter matches (see delete_step)."""
        return delete_step(
            ctx, batch=self.batch,
            delete=lambda site, object_id: self.cloud_delete(site, object_id),
            listed_delete=self.listed_delete,
            refresh=lambda site, object_id: self.refresh(site, object_id),
            rows_after=lambda after, size: self.rows_after(ctx, after, size),
        )  # fmt: skip

    def step_summary(self, ctx: StepContext) -> Done:
        """Sum up, and fail when every delete failed (delete_finish)."""
        if self.after_deletes is not None:
            self.after_deletes(ctx.project)
        return Done(result=delete_finish(ctx))

    def title(self, params) -> str:
        if params.matching is not None:
            return matching_title(params, self.nouns)
        count = len(params.listed)
        # The noun carries the number ("1 instance", "3 instances"), in every language.
        return gettext("Delete %(count)s %(things)s") % {
            "count": count,
            "things": gettext(self.noun if count == 1 else self.nouns),
        }

    def job_kind(self) -> type[Kind]:
        """The job kind, a `Kind` class built once (which registers it): the app's
        jobs.py calls this when it loads, so the workers know the kind."""
        if self._kind is None:
            spec = self
            self._kind = type(
                "".join(part.title() for part in re.split(r"[._]", self.kind)),
                (Kind,),
                {
                    "__module__": __name__,
                    "__doc__": f"Delete {self.nouns}: ticked ones, or all a list's filter matches.",
                    "name": self.kind,
                    "Params": delete_params(self.key),
                    "State": DeleteState,
                    "steps": (
                        Step(
                            "delete",
                            say(gettext_noop("Deleting the %(things)s"), things=word(self.nouns)),
                            self.step_delete,
                        ),
                        Step("summary", gettext_noop("Summing up"), self.step_summary, acts=False),
                    ),
                    "title": classmethod(lambda cls, params: spec.title(params)),
                },
            )
        return self._kind


# --- One way for every delete job kind ------------------------------------------


def delete_step(ctx: StepContext, *, batch: int, delete, refresh, rows_after, listed_delete=None):
    """The delete step of every delete job kind: the rows its params list (ticked
    ones: delete_in_batches, through `listed_delete` when they need a
    check of their own), or the next rows the job's filter matches (`rows_after`:
    delete_matching_in_batches)."""
    state = ctx.state
    if ctx.params.matching is not None:
        return delete_matching_in_batches(
            state, checkpoint=ctx.checkpoint, rows_after=rows_after, delete=delete,
            refresh=refresh, batch=batch,
        )  # fmt: skip
    if state.outcomes is None:
        state.outcomes = {}
    return delete_in_batches(
        ctx.params.listed, outcomes=state.outcomes, checkpoint=ctx.checkpoint,
        delete=listed_delete or delete, refresh=refresh, batch=batch,
    )  # fmt: skip


def delete_finish(ctx: StepContext) -> dict:
    """The last step of every delete job kind: what it deleted, what it skipped
    and why, and what failed and why (for the job's result, the same keys for both
    ways of choosing rows), then end the same way: the job fails when every delete
    it tried failed, and succeeds otherwise, with its failures named in the
    summary. A row skipped by the rules is not a failure: a job that only skipped
    succeeds and says why."""
    params = ctx.params
    if params.matching is not None:
        result = matching_summary(ctx.state)
    else:
        result = deletion_summary(
            items=params.listed,
            outcomes=ctx.state.outcomes or {},
            skipped_rows=params.skipped or [],
        )
    if result["failed_count"] and not result["deleted_count"]:
        raise StepFailed(result["summary"], result=result)
    return result


def deletion_summary(*, items: list[dict], outcomes: dict, skipped_rows: list[dict]) -> dict:
    """What a delete job did with `items` ({"id", "name"}), from the `outcomes` its
    delete step recorded and the skips it was given (`skipped_rows`): "Deleted 3,
    skipped 1: x (reason), failed 1: y (why)." For the job's result, with the
    counts under the keys portal.bulk.matching.matching_summary gives them too."""
    names = {item["id"]: item["name"] for item in items}
    deleted = [names[i] for i, o in outcomes.items() if o == "deleted"]
    failed = [
        f"{names[i]} ({o.removeprefix('failed: ')})" for i, o in outcomes.items() if o != "deleted"
    ]
    skipped = [
        say(gettext_noop("%(name)s (%(reason)s)"), name=s["name"], reason=text(s["reason"]))
        for s in skipped_rows
    ]
    summary = delete_summary_text(
        deleted=len(deleted),
        skipped=len(skipped),
        skipped_which=skipped,
        failed=len(failed),
        failed_which="; ".join(failed),
    )
    return {
        "summary": summary,
        "deleted": deleted,
        "deleted_count": len(deleted),
        "failed": failed,
        "failed_count": len(failed),
        "skipped": skipped,
        "skipped_count": len(skipped),
    }


def delete_in_batches(
    items: list[dict], *, outcomes: dict, checkpoint: Callable[[], None], delete, refresh,
    batch: int,
) -> Wait | None:  # fmt: skip
    """The delete step of every delete job: `batch` of `items` ({"id", "site_id"}) per
    run through `delete(site_name, object_id)`, then `refresh(site, object_id)`.
    Each outcome lands in `outcomes` (the job's state, saved by `checkpoint()` after
    each row), so a re-run skips the done ones; gone already counts as deleted; an
    unreachable site retries the step."""
    sites = {site.pk: site for site in Site.objects.all()}
    todo = [item for item in items if item["id"] not in outcomes]
    for item in todo[:batch]:
        site = sites[item["site_id"]]
        try:
            delete(site.name, item["id"])
            outcomes[item["id"]] = "deleted"
        except cloud.NotFound:
            outcomes[item["id"]] = "deleted"  # already gone: what the user wanted
        except cloud.Unavailable:
            raise  # the engine retries the step; done ones stay done
        except cloud.CloudError as exc:
            outcomes[item["id"]] = f"failed: {exc.message}"
        refresh(site, item["id"])
        checkpoint()
    if todo[batch:]:
        done = len(items) - len(todo[batch:])
        progress = say(gettext_noop("deleted %(done)s of %(total)s"), done=done, total=len(items))
        return Wait(progress=progress, more=True)
    return None
