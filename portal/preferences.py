"""A user's remembered choices (portal.Preference), e.g. a list's page size:
stored here, given meaning by whoever names the key (see portal.tables)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from portal.models import Preference

# The language a user last used the portal in: what a worker writes to them in
# (mails), since a worker sees no request. Saved when it changes, not per request.
LANGUAGE_KEY = "language"
LANGUAGE_SAVED_SESSION_KEY = "portal_language_saved"


def preference_get(*, user, key: str):
    """The value `user` saved under `key`, or None."""
    return Preference.objects.filter(user=user, key=key).values_list("value", flat=True).first()


def preference_set(*, user, key: str, value) -> None:
    """Remember `value` under `key` for `user`, replacing what was there."""
    Preference.objects.update_or_create(user=user, key=key, defaults={"value": value})


def language_of(user) -> str:
    """The language `user` last used the portal in, else the default (English)."""
    saved = preference_get(user=user, key=LANGUAGE_KEY) if user is not None else None
    known = {code for code, _ in settings.LANGUAGES}
    return saved if saved in known else settings.LANGUAGE_CODE


def language_remembering_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Remember a signed-in user's language (the switch's cookie, else the browser's):
    one write when it changes, noted in the session so other requests write nothing."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not hasattr(request, "session"):
            return response
        language = translation.get_language_from_request(request)
        if request.session.get(LANGUAGE_SAVED_SESSION_KEY) != language:
            preference_set(user=user, key=LANGUAGE_KEY, value=language)
            request.session[LANGUAGE_SAVED_SESSION_KEY] = language
        return response

    return middleware
