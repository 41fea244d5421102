"""The profile page's SSH keys: what is accepted, shown and refused, and why."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from portal.models import SshKey
from tests.ssh_keys import (
    DSA,
    ECDSA_384,
    ED25519,
    RSA_1024,
    RSA_2048,
    keygen_fingerprint,
    private_key_text,
)

URL = "/profile/keys/"


@pytest.fixture
def bob(client, people):
    client.force_login(people["bob"])
    return people["bob"]


def _add(client, text, name=""):
    return client.post(URL, {"public_key": text, "name": name})


def test_it_is_linked_from_the_header(client, bob):
    assert reverse("profile-keys") == URL
    assert f'href="{URL}"' in client.get(reverse("job-list")).content.decode()


@pytest.mark.parametrize("key", [ED25519, RSA_2048, ECDSA_384], ids=["ed25519", "rsa", "ecdsa"])
def test_it_adds_a_key_and_shows_the_fingerprint_ssh_keygen_prints(client, bob, key):
    response = _add(client, key)
    assert response.status_code == 302
    page = client.get(URL).content.decode()
    assert keygen_fingerprint(key) in html.unescape(page)
    stored = SshKey.objects.get(user=bob)
    assert stored.fingerprint == keygen_fingerprint(key)
    assert stored.public_key == key  # the comment kept
    assert stored.name == key.split()[-1]  # named after its comment when unnamed
    assert stored.is_default


def test_the_bits_and_type_are_kept(client, bob):
    _add(client, RSA_2048, name="work")
    _add(client, ECDSA_384, name="laptop")
    kept = {k.name: (k.key_type, k.bits, k.is_default) for k in SshKey.objects.filter(user=bob)}
    assert kept == {"work": ("ssh-rsa", 2048, True), "laptop": ("ecdsa-sha2-nistp384", 384, False)}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (DSA, "DSA keys (ssh-dss) are refused"),
        (RSA_1024, "This RSA key has 1024 bits"),
        ("ssh-ed25519 AAAAnot-a-key me@lab", "not a valid public key"),
        ("hello world", "does not start like a public key"),
        (ED25519.replace("AAAAC3", "AAAAB3"), "not a valid public key"),  # damaged blob
        ("ssh-ed25519 " + "A" * 100_000, "one public key is at most 8,192"),
        (ED25519 + "\n" + RSA_2048, "Paste one public key, on one line"),
    ],
    ids=["dsa", "rsa1024", "garbage", "words", "damaged", "100kB", "two-keys"],
)
def test_a_bad_key_gets_its_reason_a_400_and_no_row(client, bob, text, says):
    response = _add(client, text)
    assert response.status_code == 400
    assert says in html.unescape(response.content.decode())
    assert not SshKey.objects.exists()


def test_a_private_key_is_refused_and_never_echoed(client, bob):
    secret = private_key_text()
    response = _add(client, secret)
    body = html.unescape(response.content.decode())
    assert response.status_code == 400
    assert "That is a private key: it was not stored" in body
    assert "PRIVATE KEY" not in body
    assert secret.splitlines()[1] not in body
    assert not SshKey.objects.exists()


def test_a_duplicate_is_refused_per_user(client, bob, people):
    assert _add(client, ED25519, name="one").status_code == 302
    again = _add(client, ED25519.rsplit(" ", 1)[0] + " other comment", name="two")
    assert again.status_code == 400
    assert "You added this key already, as “one”" in html.unescape(again.content.decode())
    assert SshKey.objects.filter(user=bob).count() == 1
    # Another user may keep the same public key.
    client.force_login(people["carol"])
    assert _add(client, ED25519).status_code == 302


def test_default_and_delete(client, bob):
    _add(client, ED25519, name="a")
    _add(client, RSA_2048, name="b")
    a, b = SshKey.objects.get(name="a"), SshKey.objects.get(name="b")
    assert client.post(reverse("profile-key-default", args=[b.pk])).status_code == 302
    assert SshKey.objects.get(is_default=True) == b
    assert client.post(reverse("profile-key-delete", args=[b.pk])).status_code == 302
    assert SshKey.objects.get(is_default=True) == a  # the default passes on


def test_it_acts_only_on_the_users_own_keys(client, bob, people):
    _add(client, ED25519)
    key = SshKey.objects.get()
    client.force_login(people["carol"])
    assert client.post(reverse("profile-key-delete", args=[key.pk])).status_code == 404
    assert client.post(reverse("profile-key-default", args=[key.pk])).status_code == 404
    assert ED25519.split()[1] not in client.get(URL).content.decode()
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_it_requires_login_and_post(client, people):
    assert client.get(URL).status_code == 302
    client.force_login(people["bob"])
    assert client.get(reverse("profile-key-delete", args=[1])).status_code == 405
