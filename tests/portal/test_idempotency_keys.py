"""Every form that starts a job carries an idempotency key: a double click, a
reload or a second tab finds the first job instead of starting another."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# Posting forms that start no job.
NO_JOB = (
    "{% url 'login' %}", "{% url 'logout' %}", "{% url 'page-size-set' %}",
    # The profile's SSH keys: a second add is refused as a duplicate.
    "{% url 'profile-keys' %}", "{% url 'profile-key-default' key.pk %}",
    "{% url 'profile-key-delete' key.pk %}",
    # The language switch: it only sets a cookie.
    "{% url 'set_language' %}",
)  # fmt: skip


def test_every_posting_form_that_starts_a_job_carries_a_key():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for form in re.finditer(r'<form\b[^>]*method="post"[^>]*>(.*?)</form>', text, re.S):
            opening = form.group(0)[: form.group(0).index(">") + 1]
            if any(f'action="{url}"' in opening for url in NO_JOB):
                continue
            if "{% idempotency_input %}" not in form.group(1):
                line = text[: form.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(TEMPLATES)}:{line}")
    assert offenders == []
