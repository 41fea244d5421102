"""The handout says how to get in: the organiser's instructions, the image's login user,
and a QR code of each participant's access link once the organiser confirmed it."""

from __future__ import annotations

import html
import re

import pytest
import segno
from django.urls import reverse

from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from tests.workshops.test_workshop_access_link import RSTUDIO, confirm, launch_workshop
from workshops.handout import login_user_of


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    return launch_workshop(client, people, catalog, RSTUDIO)


def handout(client, workshop) -> str:
    response = client.get(reverse("workshops:workshop-handout", args=[workshop.pk]))
    assert response.status_code == 200
    return response.content.decode()


def instruct(client, workshop, text):
    url = reverse("workshops:workshop-instructions", args=[workshop.pk])
    return client.post(url, {"instructions": text, "idempotency_key": "i"})


def test_the_organisers_instructions_are_on_every_block_as_plain_text(client, workshop):
    text = "Log in with the password on the board.\n<script>alert(1)</script> & have fun"
    assert instruct(client, workshop, text).status_code == 302
    page = handout(client, workshop)
    blocks = page.split('class="border rounded p-3 h-100 handout-block"')[1:]
    assert len(blocks) == 2
    for block in blocks:
        assert (
            "Log in with the password on the board.<br>&lt;script&gt;alert(1)&lt;/script&gt; &amp; have fun"
            in block
        )
    assert "<script>alert(1)" not in page


def test_instructions_are_for_whoever_runs_the_workshop(client, people, workshop):
    client.force_login(people["bob"])  # a member of alpha, not the organiser
    assert instruct(client, workshop, "mine now").status_code == 403
    workshop.refresh_from_db()
    assert workshop.instructions == ""


def test_overlong_instructions_get_a_400_and_are_not_kept(client, workshop):
    response = instruct(client, workshop, "x" * 4001)
    assert response.status_code == 400
    assert "at most 4,000 characters" in html.unescape(response.content.decode())
    workshop.refresh_from_db()
    assert workshop.instructions == ""


def test_the_login_user_comes_from_the_image(client, workshop):
    image = workshop.image
    assert "User name: see your organiser" in handout(client, workshop)
    image.properties = {**image.properties, "os_distro": "ubuntu"}
    image.save()
    page = handout(client, workshop)
    assert "User name: <strong>ubuntu</strong> (<code>ssh ubuntu@10.0.0.5</code>)" in page
    image.properties = {**image.properties, "os_admin_user": "rstudio"}
    image.save()
    assert "<strong>rstudio</strong>" in handout(client, workshop)


@pytest.mark.parametrize(
    ("properties", "user"),
    [
        ({"os_distro": "debian"}, "debian"),
        ({"os_distro": "CentOS"}, "centos"),
        ({"os_distro": "rocky"}, "rocky"),
        ({"os_distro": "almalinux"}, "almalinux"),
        ({"os_distro": "fedora"}, "fedora"),
        ({"os_distro": "windows"}, ""),
        ({"os_distro": "ubuntu", "os_admin_user": "cloud"}, "cloud"),
        ({"os_distro": "ubuntu", "os_admin_user": "<b>x</b>"}, "ubuntu"),
        ({}, ""),
    ],
)
def test_login_users_by_distribution(properties, user):
    assert login_user_of(properties) == user


def test_a_qr_code_appears_only_once_the_link_is_confirmed(client, workshop):
    assert "<svg" not in handout(client, workshop)  # proposed only
    assert confirm(client, workshop, RSTUDIO).status_code == 302
    page = handout(client, workshop)
    codes = re.findall(r"<svg.*?</svg>", page)
    assert len(codes) == 2
    # Each one is the QR code of that participant's own link.
    for code, url in zip(codes, ["https://10.0.0.5:8787/", "https://10.0.0.6:8787/"], strict=True):
        assert code == segno.make(url, error="m").svg_inline(scale=3, border=2)
    # Inline SVG, no style attribute or data: URI the Content-Security-Policy would block.
    assert "style=" not in "".join(codes)
    assert "data:" not in "".join(codes)
    assert confirm(client, workshop, "").status_code == 302
    assert "<svg" not in handout(client, workshop)
