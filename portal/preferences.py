"""A user's remembered choices (portal.Preference), e.g. a list's page size:
stored here, given meaning by whoever names the key (see portal.tables)."""

from __future__ import annotations

from portal.models import Preference


def preference_get(*, user, key: str):
    """The value `user` saved under `key`, or None."""
    return Preference.objects.filter(user=user, key=key).values_list("value", flat=True).first()


def preference_set(*, user, key: str, value) -> None:
    """Remember `value` under `key` for `user`, replacing what was there."""
    Preference.objects.update_or_create(user=user, key=key, defaults={"value": value})
