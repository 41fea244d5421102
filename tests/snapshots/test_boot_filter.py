"""The snapshot table's boot test filter (`?boot=verified|failed|untested`) reads
the outcome the image row carries (Image.boot_outcome, written with the boot test
by images.services.boot_test_save): it finds exactly the snapshots whose latest
test says so, and each verdict is walked from its own index in every sort the
table offers, so it costs the same at 20,000 failed tests as at 2
(bench/pages_bench.py times it)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import QueryDict
from django.urls import reverse

from images.models import Image
from images.services import boot_test_save
from portal.filters import name_q
from portal.mirror.sqlite import planner_statistics_refresh
from portal.models import Site
from snapshots.selectors import snapshots_shown
from snapshots.tables import SnapshotTable
from tests.factories import make_image
from tests.plans import postgres_plan, sqlite_plan

URL = reverse("snapshots:snapshot-list")


def names(client, boot: str) -> list[str]:
    response = client.get(URL, {"boot": boot, "sort": "name"})
    assert response.status_code == 200
    return [row.record.name for row in response.context["table"].page.object_list]


def test_the_filter_follows_each_snapshots_latest_test(client, people):
    site, alpha = people["site"], people["alpha"]
    rows = {n: make_image(site=site, project=alpha, snapshot=True, name=n) for n in "abcd"}

    def record(name: str, outcome: str) -> None:
        boot_test_save(site=site, openstack_id=rows[name].openstack_id, outcome=outcome)

    record("a", "verified")
    record("b", "failed")
    record("c", "skipped")
    client.force_login(people["alice"])
    assert names(client, "verified") == ["a"]
    assert names(client, "failed") == ["b"]
    assert names(client, "untested") == ["c", "d"]
    # Tested again: "a" is being tested (not verified until it is), then does not boot.
    record("a", "running")
    assert names(client, "verified") == []
    assert names(client, "untested") == ["a", "c", "d"]
    record("a", "failed")
    record("d", "verified")
    assert names(client, "verified") == ["d"]
    assert names(client, "failed") == ["a", "b"]
    assert names(client, "untested") == ["c"]
    assert Image.objects.get(pk=rows["a"].pk).boot_outcome == "failed"


# --- Plans ---------------------------------------------------------------------


def table_orders(rows):
    """(sort, the table's ordered queryset) for every `?sort=` the headers offer."""
    names = [c.name for c in SnapshotTable([]).columns if c.orderable]
    for sort in [s for name in names for s in (name, f"-{name}")]:
        table = SnapshotTable(rows)
        table.order_by = sort
        yield sort, table.data.data


@pytest.fixture
def tested(people):
    """Alpha's and beta's snapshots, half of them tested: many verified, some failed."""
    site = people["site"]
    for n in range(40):
        for project in (people["alpha"], people["beta"]):
            image = make_image(site=site, project=project, snapshot=True, name=f"{project}-{n}")
            if n % 2 == 0:
                outcome = "failed" if n % 8 == 0 else "verified"
                boot_test_save(site=site, openstack_id=image.openstack_id, outcome=outcome)
    planner_statistics_refresh()
    if connection.vendor == "postgresql":
        # The planner's statistics of these rows, not of whatever rows autovacuum saw
        # while earlier tests ran (the plans then depended on the tests run before).
        # ANALYZE in the test's transaction: rolled back with it.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE images_image, images_boottest")


def shown(user, boot: str, project=None):
    _, _, rows = snapshots_shown(user=user, data=QueryDict(f"boot={boot}"), project=project)
    return rows


sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans")
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")


@sqlite_only
def test_a_verdict_is_walked_from_its_index_in_every_sort(people, tested):
    """Before, the tests of that outcome were read first (all of them) and the
    matching snapshots sorted: 20,000 failed tests read for a page of 10."""
    for user, project in ((people["admin"], None), (people["alice"], None),
                          (people["admin"], people["alpha"])):  # fmt: skip
        for boot in ("verified", "failed"):
            for sort, rows in table_orders(shown(user, boot, project)):
                found = sqlite_plan(rows[:10])
                assert "image_boot_" in found, (user, project, boot, sort, found)
                assert "TEMP B-TREE" not in found, (user, project, boot, sort, found)
                assert "images_boottest" not in found, (user, project, boot, sort, found)
            count = sqlite_plan(shown(user, boot, project)[:1001])
            assert "image_boot_" in count, (user, project, boot, count)


@sqlite_only
def test_not_verified_is_a_test_on_the_rows_each_sort_walks(people, tested):
    for user in (people["admin"], people["alice"]):
        for sort, rows in table_orders(shown(user, "untested")):
            found = sqlite_plan(rows[:10])
            assert "TEMP B-TREE" not in found, (user, sort, found)
            assert "images_boottest" not in found, (user, sort, found)


@postgres_only
def test_postgres_walks_a_verdict_from_its_index_in_every_sort(people, tested):
    """Every sort yields its page from an index, never sorting the matches nor reading
    the tests. A rare verdict (failed: 10 of 80 snapshots) comes from its own
    partial index; for a common one (verified: 30 of 80) the planner, knowing the
    rows, may as well walk the sort's index and skip the rest, which at 100,000 costs
    the same (bench/pages_bench.py)."""
    for user, project in ((people["admin"], None), (people["alice"], None),
                          (people["admin"], people["alpha"])):  # fmt: skip
        for boot in ("verified", "failed"):
            for sort, rows in table_orders(shown(user, boot, project)):
                found = postgres_plan(rows[:10])
                index = "image_boot_" if boot == "failed" else "image_"
                assert f"using {index}" in found, (user, project, boot, sort, found)
                assert "Sort" not in found, (user, project, boot, sort, found)
                assert "images_boottest" not in found, (user, project, boot, sort, found)


@postgres_only
def test_postgres_counts_not_verified_from_the_sort_index_alone(people, tested):
    """The "not verified" filter tests the rows each sort walks, and the page's count
    walks up to 1,001 of them: the sort indexes carry the outcome (INCLUDE), so the
    count reads no table rows (before, ~1,800 of them at 100,000 snapshots).
    The facility's list: a member's may walk either its project's index or
    everyone's filtered by project, as the statistics say, and only the first
    of those is read without the table."""
    for sort, rows in table_orders(shown(people["admin"], "untested")):
        found = postgres_plan(rows.values("pk")[:1001])
        assert "Index Only Scan" in found, (sort, found)
        assert "image_snap_" in found, (sort, found)


# --- The migration ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_copies_each_recorded_outcome_onto_its_image():
    """Boot tests recorded before the column existed: each image gets its own
    site's outcome; an image tested nowhere, or only under the same id at another
    site, stays untested."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("images", "0012_name_trigram_search")], [("images", "0013_boot_outcome")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    OldImage, OldTest = apps.get_model("images", "Image"), apps.get_model("images", "BootTest")
    here, there = (Site.objects.create(name=n, display_name=n).pk for n in ("here", "there"))
    for name in ("boots", "fails", "never", "elsewhere"):
        OldImage.objects.create(site_id=here, openstack_id=name, name=name, name_key=name,
                                is_snapshot=True, status="active", visibility="private")  # fmt: skip
    OldTest.objects.create(site_id=here, openstack_id="boots", outcome="verified")
    OldTest.objects.create(site_id=here, openstack_id="fails", outcome="failed")
    OldTest.objects.create(site_id=there, openstack_id="elsewhere", outcome="verified")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    outcomes = dict(Image.objects.values_list("openstack_id", "boot_outcome"))
    assert outcomes == {"boots": "verified", "fails": "failed", "never": "", "elsewhere": ""}
    # SQLite rebuilt the table for the column: the name search's triggers are back.
    fresh = make_image(site=Site.objects.get(pk=here), snapshot=True, name="fresh-from-0013")
    assert list(Image.objects.filter(name_q("*from-0013", model=Image))) == [fresh]


# --- A page's boot tests ---------------------------------------------------------


def test_a_page_shows_each_snapshots_own_sites_test(people):
    from snapshots.selectors import boot_tests_for

    other = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    here = make_image(site=people["site"], project=people["alpha"], snapshot=True)
    there = make_image(site=other, snapshot=True, openstack_id=here.openstack_id)
    boot_test_save(site=other, openstack_id=here.openstack_id, outcome="failed")
    tests = boot_tests_for([here, there])
    assert list(tests) == [(other.pk, here.openstack_id)]
    assert tests[(other.pk, here.openstack_id)].outcome == "failed"


@postgres_only
def test_postgres_reads_a_pages_boot_tests_by_site_and_id(people, tested):
    """The (site, image id) index leads with the site: asked by image id alone,
    PostgreSQL read every test (7-16 ms a page at 50,000 tests)."""
    from django.test.utils import CaptureQueriesContext

    from snapshots.selectors import boot_tests_for

    page = list(Image.objects.filter(is_snapshot=True).order_by("pk")[:10])
    with CaptureQueriesContext(connection) as captured:
        tests = boot_tests_for(page)
    assert {key[1] for key in tests} == {i.openstack_id for i in page if i.boot_outcome}
    (sql,) = [q["sql"] for q in captured.captured_queries]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        found = [row[0] for row in cursor.fetchall()]
    conditions = [line for line in found if "Index Cond" in line]
    assert conditions, found
    assert all("site_id" in line for line in conditions), found
