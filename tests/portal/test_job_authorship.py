"""A job records who made what it made (portal.Authorship): the first record wins,
and recording is one statement, not a transaction of its own (on SQLite that was a
BEGIN IMMEDIATE, the write lock taken a statement early, in every snapshot job)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.mirror.authorship import authors_of, authorship_record


@pytest.mark.django_db(transaction=True)
def test_recording_an_authorship_is_one_statement(people):
    site = people["site"]
    with CaptureQueriesContext(connection) as queries:
        authorship_record(site=site, openstack_id="img-1", user=people["bob"])
    assert [q["sql"].split()[0] for q in queries] == ["INSERT"]
    assert authors_of(site, ["img-1"]) == {"img-1": people["bob"].pk}


@pytest.mark.django_db(transaction=True)
def test_the_first_authorship_wins_also_inside_a_transaction(people):
    """Guard: a second record of the same object (a re-run step) changes nothing and
    leaves a surrounding transaction usable (PostgreSQL aborts one on an error)."""
    site = people["site"]
    authorship_record(site=site, openstack_id="img-1", user=people["bob"])
    with transaction.atomic():
        authorship_record(site=site, openstack_id="img-1", user=people["carol"])
        authorship_record(site=site, openstack_id="img-2", user=people["carol"])
    assert authors_of(site, ["img-1", "img-2"]) == {
        "img-1": people["bob"].pk,
        "img-2": people["carol"].pk,
    }
