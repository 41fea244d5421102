"""Names compare and filter the same on SQLite and PostgreSQL, also beyond ASCII:
SQLite's LIKE and iexact fold only A–Z, PostgreSQL folds every letter. CI runs
this file on both."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.errors import ActionRefused
from snapshots.services import snapshot_create_check
from tests.factories import make_image, make_server


def test_a_name_taken_in_another_case_is_taken_beyond_ascii(people):
    vm = make_server(project=people["alpha"], created_by=people["bob"])
    make_image(site=people["site"], project=people["alpha"], snapshot=True, name="Übung-Straße")
    for attempt in ("übung-straße", "ÜBUNG-STRASSE"):
        with pytest.raises(ActionRefused, match="already"):
            snapshot_create_check(server=vm, actor=people["bob"], name=attempt)
    assert snapshot_create_check(server=vm, actor=people["bob"], name="Übung-2") == "Übung-2"


def test_filters_match_names_beyond_ascii_in_any_case(client, people):
    for name in ("Übung-Kurs", "übung-alt", "Uebung", "Ärzte-Daten"):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=name)
    client.force_login(people["alice"])
    url = reverse("snapshots:snapshot-list")
    shown = client.get(url, {"name": "ÜBUNG"}).context["table"].page.object_list
    assert sorted(row.record.name for row in shown) == ["Übung-Kurs", "übung-alt"]
    shown = client.get(url, {"q": "ärzte"}).context["table"].page.object_list
    assert [row.record.name for row in shown] == ["Ärzte-Daten"]
