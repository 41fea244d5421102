"""Sign-in pages: the local login form (as PORTAL_LOCAL_LOGIN allows), the identity
provider's sign-in (start and callback, mozilla-django-oidc's views with the portal's
error pages) and the sign-out that also ends the provider's session."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views.generic import View
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from portal.http import next_url
from portal.oidc import ProviderUnavailable, local_password_allowed, provider_endpoints

log = logging.getLogger(__name__)


class LocalLoginForm(AuthenticationForm):
    """Django's login form; a password that PORTAL_LOCAL_LOGIN does not allow is refused
    with the way in, before it is checked (so the answer says nothing about it)."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is not None and not local_password_allowed(username):
            raise ValidationError(local_login_refusal(), code="local_login_refused")
        return super().clean()


def local_login_refusal() -> str:
    provider = settings.PORTAL_OIDC_PROVIDER_NAME
    if settings.PORTAL_LOCAL_LOGIN == "staff":
        text = _("Passwords here are only for staff accounts.")
    else:
        text = _("Signing in with a password is switched off here.")
    if settings.PORTAL_OIDC_ENABLED:
        return text + " " + _("Please use “Sign in with %(provider)s”.") % {"provider": provider}
    return text


class LoginView(auth_views.LoginView):
    """Django's login page; its `next` is read as every other one (portal.http):
    only a path on this site, else the default page."""

    form_class = LocalLoginForm

    def get_redirect_url(self):
        return next_url(self.request)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.PORTAL_OIDC_ENABLED
        context["oidc_provider_name"] = settings.PORTAL_OIDC_PROVIDER_NAME
        context["local_login"] = settings.PORTAL_LOCAL_LOGIN
        return context


class LogoutView(auth_views.LogoutView):
    """Signs out of the portal, and of the provider where the user signed in there
    and it offers RP-initiated logout (the provider comes back to the login page)."""

    def get_redirect_url(self):
        return next_url(self.request)

    def post(self, request, *args, **kwargs):
        # Read before the session is flushed: the ID token is in it.
        provider_url = import_string(settings.OIDC_OP_LOGOUT_URL_METHOD)(request)
        response = super().post(request, *args, **kwargs)
        if provider_url.startswith(("http://", "https://")):
            return HttpResponseRedirect(provider_url)
        return response


def sign_in_error(request, message: str, status: int) -> HttpResponse:
    context = {"message": message, "provider": settings.PORTAL_OIDC_PROVIDER_NAME}
    return render(request, "registration/oidc_error.html", context, status=status)


def provider_down(request, exc: Exception) -> HttpResponse:
    """The provider did not answer: back to the login page with a message (a local
    account still works)."""
    log.warning("OIDC: the provider did not answer: %s", exc)
    messages.error(
        request,
        _("%(provider)s did not answer. Please try again in a few minutes.")
        % {"provider": settings.PORTAL_OIDC_PROVIDER_NAME},
    )
    return redirect("login")


class SignInView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider (state, nonce and PKCE challenge kept in the
    session by mozilla-django-oidc)."""

    def __init__(self, **kwargs):
        # Not the library's __init__: it reads the endpoints, which may need the provider.
        View.__init__(self, **kwargs)

    def get(self, request):
        if not settings.PORTAL_OIDC_ENABLED:
            raise Http404(_("Sign-in with an identity provider is not configured."))
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_endpoints().authorization
        except ProviderUnavailable as exc:
            return provider_down(request, exc)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        response = super().get(request)
        # The portal's own reading of `next`: a path on this site, nothing else.
        request.session["oidc_login_next"] = next_url(request) or None
        return response


class CallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back. Every way it can go wrong ends on a
    page that says what happened (4xx), or on the login page when the provider is down."""

    def get(self, request):
        if not settings.PORTAL_OIDC_ENABLED:
            raise Http404(_("Sign-in with an identity provider is not configured."))
        error = request.GET.get("error", "")
        if error:
            super().get(request)  # forgets the state, signs out whoever was signed in
            log.info(
                "OIDC: the provider answered %s: %s",
                error,
                request.GET.get("error_description", ""),
            )
            if error == "access_denied":
                return sign_in_error(request, self.denied_message(), 403)
            return sign_in_error(request, self.provider_error_message(error), 400)
        state, code = request.GET.get("state", ""), request.GET.get("code", "")
        if not state or not code:
            return sign_in_error(request, _("The answer from the sign-in was incomplete."), 400)
        if state not in request.session.get("oidc_states", {}):
            return sign_in_error(request, self.state_message(), 400)
        try:
            return super().get(request)
        except (ProviderUnavailable, requests.ConnectionError, requests.Timeout) as exc:
            return provider_down(request, exc)
        except requests.HTTPError as exc:
            log.info("OIDC: the provider refused the code: %s", exc)
            return sign_in_error(request, self.code_message(), 400)
        except SuspiciousOperation as exc:
            log.warning("OIDC: the sign-in failed a check: %s", exc)
            return sign_in_error(request, _("The sign-in could not be verified."), 400)

    def login_failure(self):
        return sign_in_error(
            self.request,
            _("%(provider)s signed you in, but this portal cannot accept the account.")
            % {"provider": settings.PORTAL_OIDC_PROVIDER_NAME},
            403,
        )

    @staticmethod
    def denied_message() -> str:
        return _("You declined to share your details with the portal, so you are not signed in.")

    @staticmethod
    def provider_error_message(error: str) -> str:
        return _("%(provider)s refused the sign-in (%(error)s).") % {
            "provider": settings.PORTAL_OIDC_PROVIDER_NAME,
            "error": error[:100],
        }

    @staticmethod
    def state_message() -> str:
        return _(
            "This sign-in answer does not belong to a sign-in started in this browser, "
            "or it was used already."
        )

    @staticmethod
    def code_message() -> str:
        return _("The sign-in code has expired or was used already.")
