"""Properties the portal acts on (the workshop access URL) come from the public
catalog only: Nova copies a base image's properties into every snapshot, and a
project member may set any property on the project's own images."""

from __future__ import annotations

import pytest

from images.selectors import image_catalog_property
from tests.factories import make_image

KEY = "portal_access_url"
RSTUDIO = "https://{ip}:8787/"


@pytest.fixture
def catalog(people):
    return make_image(site=people["site"], name="RStudio", properties={KEY: RSTUDIO})


def snapshot_of(base, people, **props):
    """A snapshot as Nova makes it: the base's properties, then its own."""
    return make_image(
        site=people["site"], project=people["alpha"], snapshot=True,
        base_image_openstack_id=base.openstack_id,
        properties={**base.properties, "image_type": "snapshot",
                    "base_image_ref": base.openstack_id, **props},
    )  # fmt: skip


def test_a_catalog_image_and_its_descendants_use_the_catalogs_value(people, catalog):
    first = snapshot_of(catalog, people)
    second = snapshot_of(first, people)  # a snapshot of a machine booted from a snapshot
    assert [image_catalog_property(i, KEY) for i in (catalog, first, second)] == [RSTUDIO] * 3


def test_a_value_set_on_a_snapshot_is_not_trusted(people, catalog):
    changed = snapshot_of(catalog, people, **{KEY: "https://phish.example/{name}"})
    assert image_catalog_property(changed, KEY) == RSTUDIO
    plain = make_image(site=people["site"], name="Plain")
    assert image_catalog_property(snapshot_of(plain, people, **{KEY: "https://x/"}), KEY) == ""


def test_a_private_upload_is_not_the_catalog(people):
    upload = make_image(
        site=people["site"], project=people["alpha"], visibility="private",
        properties={KEY: "https://phish.example/"},
    )  # fmt: skip
    assert image_catalog_property(upload, KEY) == ""
    assert image_catalog_property(snapshot_of(upload, people), KEY) == ""


def test_a_snapshot_whose_ancestor_is_gone_has_no_trusted_value(people, catalog):
    orphan = snapshot_of(catalog, people)
    catalog.delete()
    assert image_catalog_property(orphan, KEY) == ""
