"""`make lint` keeps the layering: an upward import fails the build.

Runs import-linter (the contracts in pyproject.toml) on this tree, and on a
copy of it with one upward import added, the way a careless change would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from scripts.stack import ROOT

PACKAGES = (
    "config", "operations", "portal", "images", "instances", "snapshots", "workshops", "devcloud",
    "devidp", "scripts",
)  # fmt: skip


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for name in PACKAGES:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_every_contract():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_build_even_inside_a_function(tmp_path):
    root = _copy_tree(tmp_path)
    selectors = root / "images" / "selectors.py"
    selectors.write_text(
        selectors.read_text() + "\n\ndef _sneaky():\n    from snapshots.models import Snapshot\n"
    )
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "images is not allowed to import snapshots" in result.stdout


def test_the_engine_may_not_import_the_tasks_it_enqueues(tmp_path):
    root = _copy_tree(tmp_path)
    engine = root / "portal" / "jobs" / "advance.py"
    engine.write_text(engine.read_text() + "\nfrom operations.tasks import job_advance_task\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "portal is not allowed to import operations" in result.stdout
    assert "portal.jobs.advance -> operations.tasks" in result.stdout


def test_only_the_gateway_imports_openstack(tmp_path):
    root = _copy_tree(tmp_path)
    views = root / "instances" / "views.py"
    views.write_text(views.read_text() + "\nimport openstack\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "instances.views -> openstack" in result.stdout


def test_a_new_core_module_may_not_import_the_engine(tmp_path):
    """The core's own layers hold for modules nobody listed: a new one is checked too."""
    root = _copy_tree(tmp_path)
    (root / "portal" / "newcomer.py").write_text("from portal.jobs import job_kind_get\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "portal.newcomer is not allowed to import portal.jobs" in result.stdout
