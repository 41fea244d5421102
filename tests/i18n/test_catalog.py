"""The German catalog: complete, nothing fuzzy or obsolete, and every string the code
and templates mark is in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CATALOG = ROOT / "locale" / "de" / "LC_MESSAGES" / "django.po"
# What makemessages reads: the apps, the wiring, the templates (not tests, devcloud,
# scripts: nothing there reaches a user of the portal).
SOURCES = ("portal", "images", "instances", "snapshots", "workshops", "operations", "config")


def catalog_problems(po: polib.POFile) -> list[str]:
    problems = []
    for entry in po:
        where = f"{entry.msgid!r} ({', '.join(f'{f}:{n}' for f, n in entry.occurrences[:2])})"
        if entry.obsolete:
            problems.append(f"obsolete: {where}")
        elif "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {where}")
        elif not entry.translated():
            problems.append(f"untranslated: {where}")
    return problems


def keys(po: polib.POFile) -> set[tuple[str | None, str]]:
    return {(entry.msgctxt, entry.msgid) for entry in po if not entry.obsolete}


def test_the_german_catalog_translates_every_entry():
    po = polib.pofile(str(CATALOG))
    assert not po.metadata_is_fuzzy
    assert catalog_problems(po) == []


def test_the_compiled_catalog_is_the_current_one():
    """The .mo is committed (no gettext tools needed at run time): it must hold what
    the .po says."""
    po = polib.pofile(str(CATALOG))
    compiled = {(e.msgctxt, e.msgid): e for e in polib.mofile(str(CATALOG.with_suffix(".mo")))}
    for entry in po:
        if not entry.msgid:
            continue
        got = compiled[(entry.msgctxt, entry.msgid)]
        if entry.msgid_plural:
            assert got.msgstr_plural == {int(k): v for k, v in entry.msgstr_plural.items()}
        else:
            assert got.msgstr == entry.msgstr, entry.msgid


def test_catalog_problems_are_found():
    po = polib.POFile()
    po.append(polib.POEntry(msgid="Done", msgstr="Erledigt"))
    po.append(polib.POEntry(msgid="Stop", msgstr=""))
    po.append(polib.POEntry(msgid="Park", msgstr="Parken", flags=["fuzzy"]))
    po.append(polib.POEntry(msgid="Gone", msgstr="Weg", obsolete=True))
    assert [p.split(":")[0] for p in catalog_problems(po)] == ["untranslated", "fuzzy", "obsolete"]


@pytest.mark.skipif(not shutil.which("xgettext"), reason="makemessages needs GNU gettext")
def test_every_marked_string_is_in_the_catalog(tmp_path):
    """makemessages, run on a copy of the sources into an empty locale directory,
    finds no msgid the committed catalog lacks (and the catalog keeps none the code
    no longer has)."""
    for name in (*SOURCES, "templates"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(ROOT / "manage.py", tmp_path)
    (tmp_path / "locale").mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DEBUG": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["PORTAL_VAR_DIR"] = str(tmp_path / "var")
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "de", "-i", "var"],
        cwd=tmp_path, env=env, check=True, capture_output=True,
    )  # fmt: skip
    extracted = polib.pofile(str(tmp_path / "locale" / "de" / "LC_MESSAGES" / "django.po"))
    committed = polib.pofile(str(CATALOG))
    assert sorted(keys(extracted) - keys(committed), key=str) == []
    assert sorted(keys(committed) - keys(extracted), key=str) == []
