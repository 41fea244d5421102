"""No user-visible text without a translation mark: in templates none at all, in
Python modules nothing beyond the baseline of strings still to be marked."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from tests.i18n.unmarked import python_unmarked, template_unmarked

ROOT = Path(settings.BASE_DIR)
APPS = ("portal", "images", "instances", "snapshots", "workshops", "operations", "config")
# (file, first line of the string) pairs not marked yet; shrink it, never grow it.
BASELINE = Path(__file__).with_name("unmarked_baseline.txt")


def python_findings() -> set[str]:
    found = set()
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for _line, text in python_unmarked(path.read_text()):
                found.add(f"{path.relative_to(ROOT)}: {text.splitlines()[0].strip()}")
    return found


def baseline() -> set[str]:
    lines = BASELINE.read_text().splitlines() if BASELINE.exists() else []
    return {line for line in lines if line and not line.startswith("#")}


def test_every_template_marks_its_text():
    unmarked = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if (found := template_unmarked(path.read_text()))
    }
    assert unmarked == {}


def test_no_python_module_gains_an_unmarked_string():
    new = sorted(python_findings() - baseline())
    assert new == [], "mark these with gettext / gettext_lazy (see README, How to add a language)"


def test_the_baseline_lists_only_strings_still_unmarked():
    """A string marked since must leave the baseline too, so it only shrinks."""
    assert sorted(baseline() - python_findings()) == []


def test_the_template_checker_finds_unmarked_text():
    source = """{% load i18n %}<h1>{% translate "Instances" %}</h1>
    <p title="Stop it">Bare words here</p>
    <a aria-label="{% translate 'Delete' %}" href="{% url 'home' %}">{{ server.name }}</a>
    {% blocktranslate with n=count %}{{ n }} selected{% endblocktranslate %}
    <span>{{ size }} GiB · OpenStack ID</span>&nbsp;—
    <input placeholder="Search here">"""
    assert template_unmarked(source) == [
        'title="Stop it"',
        'placeholder="Search here"',
        "Bare words here",
    ]


def test_the_template_checker_accepts_marked_text():
    source = """{% extends "base.html" %}{% load i18n %}
    {% block title %}{% translate "Jobs" %}{% endblock %}
    {# a comment with words #}{% comment %}more words{% endcomment %}
    <td>{{ job.pk }}</td><td>{% translate job.progress %}</td>
    <button aria-label="{% blocktranslate with s=server.name %}Stop {{ s }}{% endblocktranslate %}">x</button>
    <code>ssh user@host</code>"""
    # "x" is a word: it is reported (a one-letter button text is still a text).
    assert template_unmarked(source) == ["x"]


def test_the_python_checker_finds_unmarked_strings():
    source = """
from django.contrib import messages
from django.utils.translation import gettext as _, gettext_lazy, gettext_noop

def view(request, server):
    messages.success(request, f"Stopping {server.name}")
    messages.info(request, _("Stopping %(name)s") % {"name": server.name})
    raise ActionRefused("This instance is locked")

STEPS = (Step("stop", "Stopping", step_stop), Step("start", gettext_noop("Starting"), step_start))

class Form:
    name = forms.CharField(label="Name", help_text=gettext_lazy("A name"))
    q = forms.CharField(widget=forms.TextInput(attrs={"placeholder": "Name or ID", "class": "x"}))

STATUS_CHOICES = [("ACTIVE", "Active"), ("parked", gettext_lazy("Parked")), ("queued", "queued")]
TASK_LABELS = {"powering-off": "stopping", "spawning": gettext_noop("spawning")}

def step(ctx):
    if ctx.waiting:
        return Wait(progress="waiting for %s" % ctx.name)
    return Done(detail=_("stopped")), Skipped(reason=REASON), StepFailed("the cloud said no")
"""
    assert [text for _line, text in python_unmarked(source)] == [
        'f"Stopping {server.name}"',
        '"This instance is locked"',
        '"Stopping"',
        '"Name"',
        '"Name or ID"',
        '"Active"',
        '"stopping"',
        '"waiting for %s" % ctx.name',
        '"the cloud said no"',
    ]


def test_the_python_checker_finds_unmarked_choice_labels():
    source = """
class Job(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", gettext_lazy("Running")
        ACTIVE = "active", "active"

class Outcome(TextChoices):
    FAILED = "failed", "does not boot"
"""
    assert [text for _line, text in python_unmarked(source)] == ['"Pending"', '"does not boot"']


def test_the_python_checker_finds_worker_texts_with_values_left_unmarked():
    """A worker's text with values is stored with portal.texts.say: its msgid must be
    marked, and an f-string in a progress, a failure or a detail is still found."""
    source = """
def step(ctx, server, done, total):
    if done < total:
        return Wait(progress=f"created {done} of {total}")
    if server.status == "ERROR":
        raise StepFailed(say("the instance went to ERROR: %(fault)s", fault=server.fault))
    Wait(progress=say(gettext_noop("%(ready)s of %(total)s ready"), ready=done, total=total))
    Wait(progress=say(gettext_noop("Nova is %(task)s"), task=word("stopping")))
    return Done(say(gettext_noop("on %(flavor)s"), flavor=server.flavor_name))
"""
    assert [text for _line, text in python_unmarked(source)] == [
        'f"created {done} of {total}"',
        '"the instance went to ERROR: %(fault)s"',
        '"stopping"',
    ]
