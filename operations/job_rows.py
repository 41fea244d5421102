"""The job list's rows as HTML (templates/portal/job_list.html prints them)."""

from __future__ import annotations

from html import escape as _e

from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from portal.jobs import job_kind_get
from portal.models import Job
from portal.tables import EMPTY_CELL, time_text
from portal.templatetags.portal_tags import job_status_label
from portal.texts import render as job_text

# Stands for a job's id in the reversed URL, replaced per row.
_ID_PLACE = 999999999999999


class JobRows:
    """The rows of the job list as its row loop (and portal/_job_status_badge.html)
    printed them, written out in Python: the loop cost 0.2 ms a row, most of the
    page's CPU, for a hundred rows of variable lookups, an include and two date
    filters each. The markup is the template's, unchanged; the badge template stays
    for the job page, which shows one."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.url_parts = reverse("job-detail", args=[_ID_PLACE]).split(str(_ID_PLACE))
        self.texts = {
            "succeeded": _e(gettext("succeeded")),
            "failed": _e(gettext("failed")),
            "cleaning_up": _e(gettext("cleaning up")),
        }

    def html(self) -> SafeString:
        return mark_safe("".join(self.row(job) for job in self.jobs))

    def row(self, job: Job) -> str:
        url = str(job.pk).join(self.url_parts)
        error = (
            f' <span class="small text-danger">{_e(truncatechars(job_text(job.error), 80))}</span>'
            if job.error
            else ""
        )
        project = EMPTY_CELL if job.project is None else job.project
        actor = EMPTY_CELL if job.actor is None else job.actor
        return (
            f'\n  <tr><td><a href="{url}">{job.pk}</a></td><td>{_e(_title(job))}</td>'
            f"<td>{_e(str(project))}</td>\n      <td>{_e(str(actor))}</td>"
            f"<td>{self.badge(job)}\n{error}</td>\n      <td>{time_text(job.created_at)}</td>"
            f"<td>{time_text(job.finished_at)}</td></tr>\n  "
        )

    def badge(self, job: Job) -> str:
        if job.status in self.texts:
            colour = {"succeeded": "success", "failed": "danger", "cleaning_up": "warning"}
            return (
                f'<span class="badge text-bg-{colour[job.status]}">{self.texts[job.status]}</span>'
            )
        text = job_text(job.progress) if job.progress else job_status_label(job.status)
        return f'<span class="badge text-bg-info">{_e(text)}</span>'


def _title(job: Job) -> str:
    # As the job_title filter says it.
    try:
        return job_kind_get(job.kind).describe(job)
    except KeyError:
        return job.kind
