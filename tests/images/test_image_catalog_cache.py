"""The printed catalog is shared by the users who would see the same rows
(images.tables.RenderedCatalogs), and never by anyone else."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from images.models import Image
from portal.models import Site
from tests.factories import make_image

URL = reverse("images:image-list")


@pytest.fixture
def catalog(people):
    one = people["site"]
    two = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    rows = {
        site.name: make_image(site=site, name="Ubuntu-24.04", checksum="u1") for site in (one, two)
    }
    rows["alpha"] = make_image(site=one, project=people["alpha"], name="alpha-own",
                               visibility="private")  # fmt: skip
    rows["beta"] = make_image(site=one, project=people["beta"], name="beta-own",
                              visibility="private")  # fmt: skip
    return rows


def page(client, user, **headers) -> str:
    client.force_login(user)
    response = client.get(URL, **headers)
    assert response.status_code == 200
    return response


def test_members_who_see_the_same_images_share_one_printed_catalog(client, people, catalog):
    first = page(client, people["alice"])
    second = page(client, people["bob"])  # alpha's member too: the same images, counts
    assert second.context["rows"] is first.context["rows"]
    assert second.context["rows_html"] == first.context["rows_html"]


def test_one_users_rows_are_never_another_users(client, people, catalog):
    for user, own, other in (("alice", "alpha-own", "beta-own"), ("carol", "beta-own", "alpha-own"),
                             ("bob", "alpha-own", "beta-own")):  # fmt: skip
        body = page(client, people[user]).content.decode()
        assert own in body
        assert other not in body
    body = page(client, people["admin"]).content.decode()
    assert "alpha-own" in body
    assert "beta-own" in body
    body = page(client, people["eve"]).content.decode()  # in no project: public ones only
    assert "Ubuntu-24.04" in body
    assert "alpha-own" not in body
    assert "beta-own" not in body


def test_a_change_shows_on_the_next_view(client, people, catalog):
    page(client, people["bob"])
    # Written the way any writer might, without the mirror's fingerprint.
    Image.objects.filter(pk=catalog["alpha"].pk).update(name="alpha-renamed")
    body = page(client, people["bob"]).content.decode()
    assert "alpha-renamed" in body
    assert "alpha-own" not in body

    Image.objects.filter(pk=catalog["devcloud2"].pk).update(min_disk=99)
    body = page(client, people["bob"]).content.decode()
    assert "min disk" in body  # Heidelberg's copy differs now

    Image.objects.filter(pk=catalog["devcloud2"].pk).update(deleted_at=timezone.now())
    body = page(client, people["bob"]).content.decode()
    assert "missing" in body  # gone from Heidelberg

    Image.objects.filter(pk=catalog["devcloud"].pk).update(copied_from_image_id="elsewhere")
    body = page(client, people["bob"]).content.decode()
    assert "copied by the portal" in body


def test_each_language_gets_its_own_catalog(client, people, catalog):
    english = page(client, people["bob"]).content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    german = page(client, people["bob"]).content.decode()
    assert "missing" in english
    assert "fehlt" not in english
    assert "fehlt" in german
    assert ">missing<" not in german
