"""The participant list as CSV: what the organiser opens in a spreadsheet never runs."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from workshops.models import Workshop

EVIL = '=HYPERLINK("http://evil","x")'


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    participants = f"{EVIL}\nAnna <anna@example.org>\nAnne-Marie"
    data = {"project": people["alpha"].pk, "flavor": catalog["small"].pk,
            "image": catalog["ubuntu"].pk, "count": "1", "participants": participants,
            "name": "kurs"}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    return Workshop.objects.get()


def csv_rows(client, workshop) -> list[list[str]]:
    response = client.get(reverse("workshops:workshop-csv", args=[workshop.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_a_participant_written_as_a_formula_is_text_in_the_csv(client, workshop):
    rows = csv_rows(client, workshop)
    assert rows[0] == ["participant", "email", "machine", "status", "ip", "access"]
    assert [row[:2] for row in rows[1:]] == [
        ["'" + EVIL, ""], ["Anna", "anna@example.org"], ["Anne-Marie", ""],
    ]  # fmt: skip
