"""Who may act, asked again when a job runs: an account gone or deactivated since
the request acts on nothing (the job fails with the reason, not an internal error)."""

from __future__ import annotations

from portal.access import can_act_on


def test_the_creator_and_admins_may_act_and_others_may_not(people):
    alpha = people["alpha"]
    assert can_act_on(people["bob"], project=alpha, created_by_id=people["bob"].pk)
    assert can_act_on(people["alice"], project=alpha, created_by_id=people["bob"].pk)
    assert not can_act_on(people["bob"], project=alpha, created_by_id=people["alice"].pk)
    assert not can_act_on(people["carol"], project=alpha, created_by_id=people["carol"].pk)


def test_a_deleted_or_deactivated_account_acts_on_nothing(people):
    alpha, alice = people["alpha"], people["alice"]
    assert not can_act_on(None, project=alpha, created_by_id=alice.pk)
    alice.is_active = False
    alice.save()
    assert not can_act_on(alice, project=alpha, created_by_id=alice.pk)
