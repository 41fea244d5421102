from datetime import datetime

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from portal.jobs import job_kind_get
from portal.texts import render

register = template.Library()


@register.filter
def filesizeformat_mib(mib) -> str:
    """Nova counts RAM in MiB; people read GiB: "1.5 GiB", in German "1,5 GiB"."""
    if mib in (None, ""):
        return "—"
    mib = int(mib)
    if mib >= 1024:
        return f"{_decimal_text(f'{mib / 1024:g}')} GiB"
    return f"{formats.number_format(mib, force_grouping=True)} MiB"


def _decimal_text(number: str) -> str:
    """A number written with a point, written as the active language writes it."""
    integer, _, fraction = number.partition(".")
    integer = formats.number_format(int(integer), force_grouping=True)
    return f"{integer}{formats.get_format('DECIMAL_SEPARATOR')}{fraction}" if fraction else integer


# The words for the states a job and its steps are in (the engine stores the keys).
JOB_STATUS_LABELS = {
    "pending": _("pending"),
    "running": _("running"),
    "cleaning_up": _("cleaning up"),
    "succeeded": _("succeeded"),
    "failed": _("failed"),
}
STEP_STATUS_LABELS = {
    "pending": _("pending"),
    "running": _("running"),
    "done": _("done"),
    "skipped": _("skipped"),
    "failed": _("failed"),
    "not run": _("not run"),
}


@register.filter
def job_status_label(status: str) -> str:
    """A job's status in the reader's language ("cleaning_up": "cleaning up")."""
    return str(JOB_STATUS_LABELS.get(status, status))


@register.filter
def step_status_label(status: str) -> str:
    """A job step's status in the reader's language ("done", "not run")."""
    return str(STEP_STATUS_LABELS.get(status, status))


@register.filter
def job_text(stored) -> str:
    """A text a worker stored (progress, error line, step label or detail, summary)
    in the reader's language; see portal.texts."""
    return render(stored)


@register.filter
def job_title(job) -> str:
    """What the job does, in words ("Create snapshot “gold”")."""
    try:
        return job_kind_get(job.kind).describe(job)
    except KeyError:
        return job.kind


def _seconds_text(seconds: float) -> str:
    # Times stamped by different machines (a worker's clock ahead of the web
    # server's) can make a step that just began look as if it starts in the future.
    seconds = max(0.0, seconds)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@register.filter
def duration_text(value) -> str:
    """A timedelta as "4.2 s" or "3.5 min"."""
    return _seconds_text(value.total_seconds())


@register.filter
def step_duration(step: dict) -> str:
    """How long a job step took (or has been running), e.g. "4.2 s"."""
    if not step.get("started_at"):
        return ""
    started = datetime.fromisoformat(step["started_at"])
    ended = (
        datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else timezone.now()
    )
    return _seconds_text((ended - started).total_seconds())


@register.filter
def bytes_size(value) -> str:
    return "—" if value in (None, "") else filesizeformat(value)


@register.filter
def has_undo_steps(job) -> bool:
    """Did the job fail and switch to its undo (compensation) steps?"""
    return any(step.get("phase") == "undo" for step in job.steps)


@register.filter
def query_without(query, names: str) -> str:
    """The query string of `query` (a QueryDict) without the comma-separated `names`."""
    kept = query.copy()
    for name in names.split(","):
        kept.pop(name, None)
    return kept.urlencode()


@register.simple_tag
def idempotency_input():
    """A hidden field with a fresh key for a form that starts a job: resubmitting
    the same rendered form finds the first job instead of starting another."""
    from uuid import uuid4

    return format_html('<input type="hidden" name="idempotency_key" value="{}">', uuid4().hex)
