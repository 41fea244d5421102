"""Bulk deletes by filter ("select all matching"): the confirmation and the job step.

A list page can select every row its filters match: 100,000 snapshots, say. The
confirmation then cannot list them, and the job cannot carry their ids. So:

- The rules that skip a row (no permission, protected, already being deleted,
  in use by a job, site unreachable) are filters, `[(reason, Q)]`, in the order
  they are asked. The confirmation counts each with one bounded query
  (COUNT over a LIMIT, exact up to COUNT_EXACT_UP_TO like the tables, "more
  than 1,000" past it) and shows a sample, the first rows in the list's order.
- The confirmation fixes the set: what the filter matched at the moment T the
  page was shown. The job stores the filter (the list's query string), the
  project scope the page had, the actor, T, and the highest row id the mirror
  held at T: rows synced after it are never deleted, even if they match. A
  row is deleted only if it matches now and its mirror row is unchanged since
  T: the mirror rewrites a row (and stamps `synced_at` with the moment it asked
  the cloud) only when something about it changed, so a row that started
  matching after T (a VM that went ERROR) or that changed in any other way
  (renamed, locked, given to someone else) carries a later `synced_at` and is
  skipped, "changed since you confirmed at HH:MM", and named in the summary.
  (`updated_at` is the cloud's clock and says when the cloud changed the row,
  not when the portal, and so the user, could have seen it.) One gap: a full
  sync stamps all it writes with the moment it began, so a row it rewrites
  from a page it read after T, in the seconds it runs, looks unchanged.
- Each task run takes the next batch of rows after a cursor (ascending id: a
  keyset, so a batch costs the same at row 10 as at row 100,000), re-applies
  the filter and the rules at that moment, deletes what passes, counts what
  does not by reason, and moves the cursor past each row as it goes. A crash
  repeats at most the row in hand; deleting a row that is gone counts as deleted.

Explicit selections (ticked rows, at most a few hundred) keep their id list:
delete_in_batches. Both end in portal.bulk.delete's summary, the one
ending of every delete job kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from portal import cloud
from portal.access import action_refusals
from portal.http import param_int
from portal.jobs import Wait
from portal.jobs.selectors import unfinished_q
from portal.models import Job, Site
from portal.tables import COUNT_EXACT_UP_TO
from portal.texts import clock, listing, say, text

# Rows a confirmation shows of "all matching": enough to recognise the selection.
SAMPLE_SIZE = 20
# Names kept per skip reason and of failures, for the summary (the counts are exact).
NAMES_KEPT = 5


def count_text(count: int, cap: int = COUNT_EXACT_UP_TO) -> str:
    return f"more than {cap:,}" if count > cap else f"{count:,}"


# Query parameters of a list that do not change which rows it shows.
IGNORED_PARAMS = {"sort", "per_page", "page", "job", "filtered", "next"}


def filters_text(data) -> str:
    """A list's filters (pairs) in words, for the job's title: "name=web, status=active"."""
    shown = [f"{key}={value}" for key, value in data if value and key not in IGNORED_PARAMS]
    return ", ".join(shown) or "no filter"


# --- What the confirmation fixed ------------------------------------------------

# A confirmation's form carries the moment it was shown, as microseconds since the
# epoch: digits, parsed like every other number a request carries.
CONFIRMED_PARAM = "confirmed"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def confirmed_param(moment: datetime) -> tuple[str, str]:
    """The hidden field that carries `moment`, when the confirmation was shown."""
    return CONFIRMED_PARAM, str((moment - _EPOCH) // _MICROSECOND)


def confirmed_at_from(data) -> datetime:
    """When the confirmation a request posts was shown. Never later than now: a
    moment still to come would let rows that change after the click through. Now
    when the form carries none (the request is its own confirmation, like a
    missing `upto`); a 400 when it is not a number."""
    micros = param_int(data, CONFIRMED_PARAM, default=0, low=1, high=10**16 - 1)
    now = timezone.now()
    return min(_EPOCH + micros * _MICROSECOND, now) if micros else now


def changed_since_refusals(confirmed_at: datetime | None) -> list[tuple[str, Q]]:
    """The rule that holds a "delete all matching" to what its confirmation showed
    at `confirmed_at`: a row the mirror rewrote since then changed (or matches only
    now) and is skipped. No rule without a moment (the confirmation page itself:
    nothing can have changed since it, and the count would read every row)."""
    if confirmed_at is None:
        return []
    reason = say(gettext_noop("changed since you confirmed at %(time)s"), time=clock(confirmed_at))
    return [(reason, Q(synced_at__gt=confirmed_at))]


def matching_confirmed_at(job: Job) -> datetime | None:
    """When a "delete all matching" job's confirmation was shown; None for a job
    recorded before jobs kept it."""
    return confirmed_at_of(job.params.get("matching") or {})


def confirmed_at_of(matching: dict) -> datetime | None:
    """The moment of the confirmation, from a job's params["matching"] (see
    matching_confirmed_at)."""
    raw = matching.get("confirmed_at")
    return datetime.fromisoformat(raw) if raw else None


def matching_params(*, data, scope, upto: int, confirmed_at: datetime, plan) -> dict:
    """The params of a "delete all matching" job: the list's filters (`data`, pairs),
    the projects the page covered (None: every one), the highest row id and the
    moment of the confirmation, and how many of its rows `plan` counted."""
    return {
        "matching": {
            "query": [list(pair) for pair in data],
            "projects": scope,
            "upto": upto,
            "confirmed_at": confirmed_at.isoformat(),
        },
        "expected": plan.will_delete_text,
        "filters": filters_text(data),
    }


def matching_title(params, nouns: str) -> str:
    """A "delete all matching" job's title, from its params (see
    portal.bulk.delete.DeleteParams): "Delete all matching snapshots (name=web; 12
    when confirmed at 14:03)"."""
    confirmed_at = confirmed_at_of(params.matching)
    when = gettext("at confirmation")
    if confirmed_at is not None:
        when = gettext("when confirmed at %(time)s") % {
            "time": f"{timezone.localtime(confirmed_at):%H:%M}"
        }
    return gettext("Delete all matching %(nouns)s (%(filters)s; %(count)s %(when)s)") % {
        "nouns": gettext(nouns),
        "filters": params.filters,
        "count": params.expected,
        "when": when,
    }


def permission_refusals(
    actor, *, outside: str, not_yours: str, seen: bool = False
) -> list[tuple[str, Q]]:
    """portal.access's rules for acting on rows, with the words a delete uses.
    `seen`: the rows come from a list of the actor's own projects, so "outside"
    cannot match; leaving it out spares a confirmation a count that reads them all."""
    texts = {"outside": outside, "not_yours": not_yours}
    return [
        (texts[code], condition)
        for code, condition in action_refusals(actor)
        if not (seen and code == "outside")
    ]


def busy_q(*, target: str, kinds: tuple[str, ...] = ()) -> Q | None:
    """Rows (servers or images, by `target`) an unfinished job acts on, as a filter;
    None when there are none. `kinds`: only jobs of these kinds."""
    field_name = f"target_{target}_id"
    # The unfinished jobs by their index; `exclude(status__in=FINISHED)` read every job ever run.
    jobs = Job.objects.filter(unfinished_q()).exclude(**{field_name: ""}).order_by()
    if kinds:
        jobs = jobs.filter(kind__in=kinds)
    by_site: dict[int | None, set[str]] = {}
    for site_id, object_id in jobs.values_list("site_id", field_name):
        by_site.setdefault(site_id, set()).add(object_id)
    return _ids_q(by_site)


def _ids_q(by_site: dict) -> Q | None:
    terms = None
    for site_id, ids in by_site.items():
        term = Q(openstack_id__in=sorted(ids))
        if site_id is not None:
            term &= Q(site_id=site_id)
        terms = term if terms is None else terms | term
    return terms


def listed_q(jobs, *, key: str) -> Q | None:
    """Rows listed by id (params[key]: [{"id", "site_id"}]) in these delete jobs and
    not yet done by them, as a filter; None when there are none."""
    by_site: dict[int, set[str]] = {}
    for job in jobs:
        done = job.state.get("outcomes", {})
        for item in job.params.get(key, []):
            if item["id"] not in done:
                by_site.setdefault(item["site_id"], set()).add(item["id"])
    return _ids_q(by_site)


def delete_pending(selection: QuerySet, job: Job) -> QuerySet:
    """The rows of a "delete all matching" job's `selection` it has still to look at
    (past its cursor) that its actor may delete and that are as confirmed: what
    other deletes count as "already being deleted"."""
    rows = selection.filter(pk__gt=job.state.get("cursor", 0))
    refusals = permission_refusals(job.actor, outside="", not_yours="")
    for _, condition in refusals + changed_since_refusals(matching_confirmed_at(job)):
        rows = rows.exclude(condition)
    return rows


def being_deleted_q(*, kind: str, key: str, pending, before: int | None = None) -> Q | None:
    """The rows unfinished delete jobs of `kind` (older than the job `before`, a pk)
    will still delete, as a filter; None when no such job runs. A job lists its rows
    under params[key], or deletes all matching: `pending(job)` are the rows it has left."""
    jobs = Job.objects.filter(unfinished_q(), kind=kind).order_by()
    if before is not None:
        jobs = jobs.filter(pk__lt=before)
    unfinished = list(jobs)
    wanted = listed_q([job for job in unfinished if key in job.params], key=key)
    for job in unfinished:
        if "matching" in job.params:
            left = Q(pk__in=pending(job).values("pk"))
            wanted = left if wanted is None else wanted | left
    return wanted


def unreachable_refusals() -> list[tuple[str, Q]]:
    return [
        (say(gettext_noop("%(site)s is unreachable"), site=site.display_name), Q(site_id=site.pk))
        for site in Site.objects.filter(unreachable_since__isnull=False)
    ]


def refusal_annotate(rows: QuerySet, refusals: list[tuple[str, Q]]) -> QuerySet:
    """`rows` with `refusal`: the first rule that skips the row, "" if none does."""
    if not refusals:
        return rows.annotate(refusal=Value("", output_field=CharField()))
    return rows.annotate(
        refusal=Case(
            *(When(condition, then=Value(reason)) for reason, condition in refusals),
            default=Value(""),
            output_field=CharField(),
        )
    )


def up_to(rows: QuerySet, upto: int) -> QuerySet:
    """`rows` with ids ≤ `upto`, written `+id <= upto`: a plain `id <= upto`
    makes SQLite walk the id range (all 100,000 rows) instead of the index the
    other filters name, e.g. the few protected snapshots'. Unary plus keeps the
    id index out of the choice on SQLite and PostgreSQL alike."""
    unindexed = Func(F("pk"), template="+%(expressions)s", output_field=BigIntegerField())
    return rows.filter(LessThanOrEqual(unindexed, upto))


@dataclass(frozen=True)
class MatchingPlan:
    """What "delete all matching" will do, counted when the confirmation is shown."""

    will_delete: int  # exact up to `cap`, cap + 1 meaning "more"
    skipped: list[tuple[str, int]]  # (reason, count), same capping
    sample: list  # the first rows in the list's order, each with `.refusal`
    upto: int  # the highest row id the job may touch
    cap: int = COUNT_EXACT_UP_TO
    filters: list[tuple[str, str]] = field(default_factory=list)

    @property
    def will_delete_text(self) -> str:
        return count_text(self.will_delete, self.cap)

    @property
    def skipped_texts(self) -> list[tuple[str, str]]:
        return [(reason, count_text(count, self.cap)) for reason, count in self.skipped]

    @property
    def cap_text(self) -> str:
        return f"{self.cap:,}"

    @property
    def is_capped(self) -> bool:
        return self.will_delete > self.cap or any(c > self.cap for _, c in self.skipped)

    @property
    def sample_is_all(self) -> bool:
        total = self.will_delete + sum(count for _, count in self.skipped)
        return not self.is_capped and len(self.sample) >= total


# A skip rule whose rows (in the whole table) number up to this many is counted
# over their ids (see rule_rows_first).
MAX_RULE_IDS = COUNT_EXACT_UP_TO


def rule_rows_first(model, rule: Q) -> Q:
    """`rule` as the list of the rows it matches in the whole table, when they are
    few (protected snapshots, parked machines' disks): read first, on their own.

    Asked together with the list's filter, the database walked the filter's index
    (all 50,000 of alice's "snap-alpha…" snapshots) and tested the rule on each,
    to count the handful it matches: 7x at 100,000 snapshots. On their own, the
    rule's rows come from the rule's own index (e.g. the source-server one), and
    the filter is then asked of those few. A broad rule (everything someone else
    created, for a member) stays as it is: its count stops at the cap anyway."""
    ids = list(
        model._default_manager.filter(rule)
        .order_by()
        .values_list("pk", flat=True)[: MAX_RULE_IDS + 1]
    )
    if len(ids) > MAX_RULE_IDS:
        return rule
    return Q(pk__in=ids)


def matching_plan(
    rows: QuerySet,
    refusals: list[tuple[str, Q]],
    *,
    ordered: QuerySet,
    upto: int,
    walk: QuerySet | None = None,
) -> MatchingPlan:
    """Count what deleting every row of `rows` (ids ≤ `upto`) would delete and skip,
    by reason, each with one bounded query; and the first SAMPLE_SIZE rows of
    `ordered` (the same rows in the list's order), each with its `refusal`.

    The reasons are disjoint: a row counts for the first rule that skips it.

    `walk`: everything the list could show, in its order. When more rows match
    than the counts go, the sample walks it and keeps the matching ones (a
    broad filter matches densely, so 20 are found within a few thousand rows)
    instead of letting the filter's index hand over all of them to be sorted;
    when fewer match, sorting them is bounded."""
    rows = up_to(rows, upto).order_by()
    cap = COUNT_EXACT_UP_TO
    skipped = []
    earlier = None  # the rules asked before this one
    for reason, rule in refusals:
        condition = rule_rows_first(rows.model, rule)
        matching = rows.filter(condition)
        if earlier is not None:
            matching = matching.exclude(earlier)
        count = matching[: cap + 1].count()
        if count:
            skipped.append((reason, count))
        earlier = condition if earlier is None else earlier | condition
    passing = rows if earlier is None else rows.exclude(earlier)
    will_delete = passing[: cap + 1].count()
    source = ordered
    if walk is not None and will_delete + sum(count for _, count in skipped) > cap:
        source = walk.filter(Exists(rows.filter(pk=OuterRef("pk"))))
    # The bound is applied to the sample in Python: in the query it would tempt the
    # database to walk the id index instead of the list's order (and sort it all).
    first = refusal_annotate(source, refusals)[:SAMPLE_SIZE]
    sample = [row for row in first if row.pk <= upto]
    return MatchingPlan(will_delete=will_delete, skipped=skipped, sample=sample, upto=upto, cap=cap)


def delete_matching_in_batches(
    state, *, checkpoint, rows_after, delete, refresh, batch: int
) -> Wait | None:
    """The delete step of a "select all matching" job; `state` is its DeleteState
    (portal.bulk.delete), saved by `checkpoint()`.

    `rows_after(cursor, batch)`: the next rows after the cursor in ascending id
    order that the job's filter matches now, as dicts {"pk", "id", "site_id",
    "name", "refusal"} ("" when the actor may delete the row now). Each is
    deleted through `delete(site_name, object_id)` then `refresh(site, object_id)`,
    or counted as skipped by its reason; the cursor moves past it in the same
    save. An unreachable site raises (the engine retries the step; the cursor
    stays on the last row done)."""
    rows = rows_after(state.cursor or 0, batch)
    sites = {site.pk: site for site in Site.objects.all()} if rows else {}
    for row in rows:
        if row["refusal"]:
            skipped = state.skipped = state.skipped or {}
            skipped[row["refusal"]] = skipped.get(row["refusal"], 0) + 1
            _keep_name(state, "skipped_names", row["refusal"], row["name"])
        else:
            site = sites[row["site_id"]]
            failure = ""
            try:
                delete(site.name, row["id"])
            except cloud.NotFound:
                pass  # gone already: as wanted
            except cloud.Unavailable:
                raise
            except cloud.CloudError as exc:
                failure = exc.message
            if failure:
                state.failed = (state.failed or 0) + 1
                _keep_name(state, "failed_names", "", f"{row['name']} ({failure})")
            else:
                state.deleted = (state.deleted or 0) + 1
                _keep_name(state, "deleted_names", "", row["name"])
            refresh(site, row["id"])
        state.cursor = row["pk"]
        checkpoint()
    if len(rows) == batch:
        skipped = sum((state.skipped or {}).values())
        if skipped:
            progress = say(
                gettext_noop("deleted %(deleted)s, skipped %(skipped)s so far"),
                deleted=state.deleted or 0,
                skipped=skipped,
            )
        else:
            progress = say(gettext_noop("deleted %(deleted)s so far"), deleted=state.deleted or 0)
        return Wait(progress=progress, more=True)
    return None


def _keep_name(state, key: str, reason: str, name: str) -> None:
    by_reason = getattr(state, key) or {}
    setattr(state, key, by_reason)
    names = by_reason.setdefault(reason, [])
    if len(names) < NAMES_KEPT:
        names.append(name)


def matching_summary(state) -> dict:
    """What a "delete all matching" job did, from the counts its delete step kept
    in `state` (its DeleteState): "Deleted 1,200, skipped 3: protected in the cloud
    (3: a, b, c), failed 1: x (why)." For the job's result."""
    deleted = state.deleted or 0
    skipped = state.skipped or {}
    failed = state.failed or 0
    skipped_texts = []
    for reason, count in skipped.items():
        names = (state.skipped_names or {}).get(reason, [])
        more = ", …" if count > len(names) else ""
        skipped_texts.append(
            say(
                gettext_noop("%(reason)s (%(count)s: %(names)s)"),
                reason=text(reason),
                count=count,
                names=", ".join(names) + more,
            )
        )
    failed_names = (state.failed_names or {}).get("", [])
    more = "; …" if failed > len(failed_names) else ""
    summary = delete_summary_text(
        deleted=deleted,
        skipped=sum(skipped.values()),
        skipped_which=skipped_texts,
        failed=failed,
        failed_which="; ".join(failed_names) + more,
    )
    return {
        "summary": summary,
        "deleted": (state.deleted_names or {}).get("", []),
        "deleted_count": deleted,
        "failed": failed_names,
        "failed_count": failed,
        "skipped": skipped_texts,
        "skipped_count": sum(skipped.values()),
    }


def delete_summary_text(
    *, deleted: int, skipped: int, skipped_which: list[str], failed: int, failed_which: str
) -> str:
    """A delete job's summary, stored for the reader's language (portal.texts):
    "Deleted 3, skipped 1: x (reason), failed 1: y (why)." `skipped_which`: stored
    texts (a reason is a msgid); `failed_which`: names and the cloud's words."""
    counts = {"deleted": deleted, "skipped": skipped, "failed": failed}
    which = {"skipped_which": listing(skipped_which), "failed_which": failed_which}
    if skipped and failed:
        template = gettext_noop(
            "Deleted %(deleted)s, skipped %(skipped)s: %(skipped_which)s, "
            "failed %(failed)s: %(failed_which)s."
        )
    elif skipped:
        template = gettext_noop("Deleted %(deleted)s, skipped %(skipped)s: %(skipped_which)s.")
    elif failed:
        template = gettext_noop("Deleted %(deleted)s, failed %(failed)s: %(failed_which)s.")
    else:
        template = gettext_noop("Deleted %(deleted)s.")
    return say(template, **counts, **which)
