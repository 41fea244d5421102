from __future__ import annotations

from django.urls import reverse

from portal.models import Job


def make_job(people, **fields):
    defaults = {
        "kind": "snapshot.create", "actor": people["bob"], "project": people["alpha"],
        "site": people["site"], "params": {"name": "gold"}, "status": "running",
        "steps": [
            {"name": "check", "label": "Checking", "status": "done",
             "started_at": "2026-11-27T10:00:00+00:00", "finished_at": "2026-11-27T10:00:01.500000+00:00", "detail": ""},
            {"name": "stop", "label": "Stopping", "status": "running",
             "started_at": "2026-11-27T10:00:01.500000+00:00", "finished_at": None, "detail": ""},
        ],
    }  # fmt: skip
    defaults.update(fields)
    return Job.objects.create(**defaults)


def test_job_detail_shows_steps_with_durations_and_polls(client, people):
    job = make_job(people)
    client.force_login(people["alice"])
    response = client.get(reverse("job-detail", args=[job.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Create snapshot “gold”" in body
    assert "Checking — done" in body
    assert "(1.5 s)" in body
    assert 'hx-trigger="every 2s"' in body
    partial = client.get(reverse("job-detail", args=[job.pk]), headers={"HX-Request": "true"})
    assert "<nav" not in partial.content.decode()
    # Each poll swaps the whole partial: nothing of it may leak as text outside the div.
    assert partial.content.decode().strip().startswith('<div id="job-')


def test_a_finished_job_stops_polling_and_shows_its_error(client, people):
    job = make_job(people, status="failed", error="Stopping: the instance went to ERROR")
    client.force_login(people["bob"])
    body = client.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "every 2s" not in body
    assert "went to ERROR" in body
    job.finished_at = job.created_at
    job.started_at = job.created_at
    job.save()
    assert "took 0.0 s" in client.get(reverse("job-detail", args=[job.pk])).content.decode()


def test_job_access(client, people):
    job = make_job(people)
    assert client.get(reverse("job-detail", args=[job.pk])).status_code == 302
    client.force_login(people["carol"])
    assert client.get(reverse("job-detail", args=[job.pk])).status_code == 404
    assert client.get(reverse("job-detail", args=[999])).status_code == 404
    assert "gold" not in client.get(reverse("job-list")).content.decode()
    client.force_login(people["bob"])
    assert "gold" in client.get(reverse("job-list")).content.decode()


def test_the_job_list_prints_each_row_as_its_template_did(client, people):
    # Guard for operations.job_rows.JobRows (the rows left the template for speed).
    from django.utils import formats, timezone

    running = make_job(people, progress="uploading 40 %")
    failed = make_job(people, status="failed", error="Stopping: <the> instance " + "x" * 90,
                      finished_at=timezone.now())  # fmt: skip
    make_job(people, project=None, actor=None, status="cleaning_up")
    client.force_login(people["admin"])  # the one who sees a job without project or actor
    body = client.get(reverse("job-list")).content.decode()

    def when(value):
        return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")

    url = reverse("job-detail", args=[running.pk])
    assert (
        f'<tr><td><a href="{url}">{running.pk}</a></td><td>Create snapshot “gold”</td>'
        f"<td>{people['alpha']}</td>\n      <td>bob</td>"
        '<td><span class="badge text-bg-info">uploading 40 %</span>\n</td>\n'
        f"      <td>{when(running.created_at)}</td><td>—</td></tr>"
    ) in body
    assert (
        '<span class="badge text-bg-danger">failed</span>\n <span class="small text-danger">'
        "Stopping: &lt;the&gt; instance xxxxxxxx"
    ) in body
    assert f"<td>{when(failed.finished_at)}</td></tr>" in body
    assert (
        "<td>—</td>\n      <td>—</td>"
        '<td><span class="badge text-bg-warning">cleaning up</span>\n</td>'
    ) in body
