from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.filter
def filesizeformat_mib(mib) -> str:
    """Nova counts RAM in MiB; people read GiB."""
    if mib in (None, ""):
        return "—"
    mib = int(mib)
    if mib >= 1024:
        return f"{mib / 1024:g} GiB"
    return f"{mib} MiB"


@register.filter
def job_title(job) -> str:
    """What the job does, in words ("Create snapshot “gold”")."""
    from portal.jobs import job_kind_get

    try:
        return job_kind_get(job.kind).describe(job)
    except KeyError:
        return job.kind


@register.filter
def bytes_size(value) -> str:
    return "—" if value in (None, "") else filesizeformat(value)
