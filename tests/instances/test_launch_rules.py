"""Launch rules: names, compatibility, quota — the same the job checks again."""

from __future__ import annotations

import pytest

from instances.launch_rules import fit_problems, launch_check
from instances.models import Flavor
from instances.naming import hostname_part, instance_names
from instances.participants import participants_from
from portal.errors import ActionRefused
from tests.factories import make_image


@pytest.fixture
def small(people):
    return Flavor.objects.create(
        site=people["site"],
        openstack_id="f-small",
        name="de.NBI small",
        vcpus=2,
        ram_mib=4096,
        disk_gb=50,
    )


@pytest.fixture
def tiny_disk(people):
    return Flavor.objects.create(
        site=people["site"],
        openstack_id="f-tiny",
        name="de.NBI tiny",
        vcpus=1,
        ram_mib=2048,
        disk_gb=20,
    )


@pytest.fixture
def snap(people):
    return make_image(
        site=people["site"], project=people["alpha"], snapshot=True, name="course-gold", min_disk=50
    )


def with_quota(project, *, instances=10, cores=20, ram=64 * 1024, used=(0, 0, 0)):
    project.quota_instances, project.quota_cores, project.quota_ram_mib = instances, cores, ram
    project.used_instances, project.used_cores, project.used_ram_mib = used
    project.save()
    return project


def test_hostname_parts_are_transliterated_letters_digits_dashes():
    assert hostname_part("Jürgen Müller") == "juergen-mueller"
    assert hostname_part("Łukasz Żółć") == "lukasz-zolc"
    assert hostname_part("  O'Brien, Ann (TA) ") == "o-brien-ann-ta"
    assert hostname_part("Straße") == "strasse"
    assert hostname_part("李") == ""


def test_workshop_names_are_prefixed_unique_and_at_most_63_characters():
    names = instance_names(prefix="RNA Course", participants=["Anna", "anna", "Ben", "李"], count=4)
    assert names == [
        "rna-course-anna",
        "rna-course-anna-2",
        "rna-course-ben",
        "rna-course-participant",
    ]
    long = instance_names(prefix="x" * 60, participants=["Alexander", "Alexandra"], count=2)
    assert all(len(n) <= 63 for n in long)
    assert len(set(long)) == 2


def test_one_instance_keeps_the_name_and_a_count_numbers_them():
    assert instance_names(prefix="my-vm", participants=[], count=1) == ["my-vm"]
    assert instance_names(prefix="lab", participants=[], count=3) == ["lab-1", "lab-2", "lab-3"]


def test_participants_one_per_line():
    assert participants_from("Anna\n\n  Ben  \r\nCem\n") == ["Anna", "Ben", "Cem"]


def test_fit_rules(snap, small, tiny_disk):
    assert fit_problems(image=snap, flavor=small) == []
    assert fit_problems(image=snap, flavor=tiny_disk) == ["needs 50 GB disk, the flavor has 20 GB"]
    snap.min_ram = 8192
    assert "needs 8192 MiB RAM" in fit_problems(image=snap, flavor=small)[0]
    snap.status = "saving"
    assert "it is saving, not active" in fit_problems(image=snap, flavor=small)


def check(people, **overrides):
    args = {
        "actor": people["alice"], "project": people["alpha"], "prefix": "ws", "count": 1,
        "participants": [],
    }  # fmt: skip
    args.update(overrides)
    return launch_check(**args)


def test_a_fitting_launch_gives_the_plan(people, snap, small):
    with_quota(people["alpha"])
    plan = check(people, flavor=small, image=snap, participants=["Anna", "Ben"])
    assert plan.names == ["ws-anna", "ws-ben"]


def test_without_a_name_instances_are_named_after_the_image(people, snap, small):
    assert check(people, flavor=small, image=snap, prefix="").names == ["course-gold"]


def test_quota_is_checked_for_the_whole_batch(people, snap, small):
    with_quota(people["alpha"], instances=10, cores=20, used=(0, 12, 0))
    with pytest.raises(ActionRefused) as info:
        check(people, flavor=small, image=snap, count=5)
    assert "needs 10 vCPUs (free: 8)" in info.value.message
    assert check(people, flavor=small, image=snap, count=4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("tiny", "cannot boot on de.NBI tiny: needs 50 GB disk"),
        ("not_active", "it is queued, not active"),
        ("other_project", "only in the project that owns them"),
        ("count", "between 1 and 100"),
    ],
)
def test_refusals(people, snap, small, tiny_disk, change, message):
    kwargs = {"flavor": small, "image": snap}
    if change == "tiny":
        kwargs["flavor"] = tiny_disk
    elif change == "not_active":
        snap.status = "queued"
    elif change == "other_project":
        kwargs["actor"] = people["admin"]
        kwargs["project"] = people["beta"]
    elif change == "count":
        kwargs["count"] = 101
    with pytest.raises(ActionRefused) as info:
        check(people, **kwargs)
    assert message in info.value.message


def test_outsiders_cannot_launch(people, snap, small):
    with pytest.raises(ActionRefused) as info:
        check(people, actor=people["carol"], flavor=small, image=snap)
    assert info.value.status == 403


def test_a_snapshot_of_a_volume_backed_instance_is_not_offered_to_boot_or_test(people, small):
    """Nova makes it a 0-byte image naming Cinder volume snapshots; each boot makes new
    volumes that a seat's or a boot test's teardown would leave behind."""
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_verify_request

    volume_snap = make_image(
        site=people["site"], project=people["alpha"], snapshot=True, name="from-volume",
        size=0, properties={"image_type": "snapshot", "block_device_mapping": "[{...}]"},
    )  # fmt: skip
    assert fit_problems(image=volume_snap, flavor=small) == [
        "it was made from an instance booted from a volume: booting it makes volumes "
        "the portal cannot clean up"
    ]
    with pytest.raises(ActionRefused, match="booted from a volume"):
        snapshot_verify_request(
            snapshot=Snapshot.objects.get(pk=volume_snap.pk), actor=people["alice"]
        )
