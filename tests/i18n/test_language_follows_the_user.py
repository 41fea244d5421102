"""The language a user chose stays with them: past the end of the browser session, and
onto another browser they sign in from (portal.preferences.language_remembering_middleware)."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from portal.models import Preference

ENGLISH_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}
GERMAN_BROWSER = {"Accept-Language": "de-DE,de;q=0.9"}


def test_the_switchs_choice_outlives_the_browser_session(client, people):
    client.force_login(people["alice"])
    response = client.post(reverse("set_language"), {"language": "de"})
    cookie = response.cookies["django_language"]
    assert cookie.value == "de"
    # Django's default is a session cookie, gone when the browser closes.
    assert int(cookie["max-age"]) >= 300 * 24 * 3600


def test_signing_in_on_another_browser_brings_the_users_language(client, people):
    alice = people["alice"]
    client.force_login(alice)
    client.post(reverse("set_language"), {"language": "de"})
    client.get(reverse("instances:instance-list"))

    elsewhere = Client()  # an English browser that never saw the switch
    alice.set_password("pw-of-alice")
    alice.save()
    response = elsewhere.post(
        reverse("login"), {"username": "alice", "password": "pw-of-alice"}, headers=ENGLISH_BROWSER
    )
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "de"
    page = elsewhere.get(reverse("instances:instance-list"), headers=ENGLISH_BROWSER)
    assert page.headers["Content-Language"] == "de"
    # The English browser did not overwrite what alice chose.
    assert Preference.objects.get(user=alice, key="language").value == "de"


def test_an_old_session_without_the_cookie_gets_the_remembered_language_once(client, people):
    alice = people["alice"]
    Preference.objects.create(user=alice, key="language", value="de")
    client.force_login(alice)
    first = client.get(reverse("instances:instance-list"), headers=ENGLISH_BROWSER)
    assert first.headers["Content-Language"] == "de"
    assert first.cookies["django_language"].value == "de"


def test_the_browsers_own_choice_wins_over_the_remembered_one(client, people):
    alice = people["alice"]
    Preference.objects.create(user=alice, key="language", value="de")
    client.force_login(alice)
    client.cookies["django_language"] = "en"
    page = client.get(reverse("instances:instance-list"), headers=GERMAN_BROWSER)
    assert page.headers["Content-Language"] == "en"
    assert Preference.objects.get(user=alice, key="language").value == "en"


def test_a_user_who_never_chose_gets_the_browsers_language(client, people):
    client.force_login(people["alice"])
    page = client.get(reverse("instances:instance-list"), headers=GERMAN_BROWSER)
    assert page.headers["Content-Language"] == "de"
    assert "django_language" not in page.cookies
