"""A user's remembered choices (portal.Preference), e.g. a list's page size:
stored here, given meaning by whoever names the key (see portal.tables)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast

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
    saved = _saved_language(user) if user is not None else None
    return saved or settings.LANGUAGE_CODE


def _saved_language(user) -> str | None:
    """The language remembered for `user`, if it is one the portal speaks."""
    saved = preference_get(user=user, key=LANGUAGE_KEY)
    return saved if saved in {code for code, _ in settings.LANGUAGES} else None


def language_remembering_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Remember a signed-in user's language (the switch's cookie, else the browser's):
    one write when it changes, noted in the session so other requests write nothing.

    The language follows the user: on a browser without the switch's cookie (another
    machine, a cleared browser) a signed-in user gets the language they last used the
    portal in, not the browser's, and that browser keeps it from then on. Looked up
    once per session (the sign-in itself, or the first request of an old session)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        remembered = _remembered_language(request)
        if remembered is not None:  # LocaleMiddleware chose before it knew the user
            translation.activate(remembered)
            request.LANGUAGE_CODE = remembered
        response = get_response(request)
        if remembered is None:
            remembered = _remembered_language(request)  # the sign-in request itself
        if remembered is not None:
            _language_cookie_set(response, remembered)
            request.session[LANGUAGE_SAVED_SESSION_KEY] = remembered
            return response
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not hasattr(request, "session"):
            return response
        language = translation.get_language_from_request(request)
        if request.session.get(LANGUAGE_SAVED_SESSION_KEY) != language:
            preference_set(user=user, key=LANGUAGE_KEY, value=language)
            request.session[LANGUAGE_SAVED_SESSION_KEY] = language
        return response

    return middleware


def _remembered_language(request: HttpRequest) -> str | None:
    """The language a signed-in user last used, when this browser has no choice of its
    own and this session has not settled one yet; else None (no query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(request, "session"):
        return None
    if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return None
    if LANGUAGE_SAVED_SESSION_KEY in request.session:
        return None
    return _saved_language(user)


def _language_cookie_set(response: HttpResponse, language: str) -> None:
    # As django.views.i18n.set_language sets it, so the switch and this agree.
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=cast(Literal["Lax", "Strict", "None"], settings.LANGUAGE_COOKIE_SAMESITE),
    )
