"""`make test` run again after a run that left a deep tree behind (killed part-way, say):
pytest's own removal of old runs recurses once per level and failed the whole suite with
RecursionError after every test passed; the deephelp plugin removes them first."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

from llb.fsutil import remove_tree

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

_DEEP_TEST = '''
import os

def test_leaves_a_deep_tree(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    for _ in range(1500):
        os.mkdir("a", dir_fd=fd)
        sub = os.open("a", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)
'''


def test_old_runs_with_deep_trees_are_removed_without_recursion(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_deep.py").write_text(_DEEP_TEST)
    (project / "conftest.py").write_text('pytest_plugins = ["deephelp"]\n')
    temproot = tmp_path / "temproot"
    temproot.mkdir()
    env = dict(os.environ, PYTEST_DEBUG_TEMPROOT=str(temproot),
               PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    for run in range(5):  # pytest keeps 3 runs: the 4th and 5th remove the oldest
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-p", "no:xdist", "test_deep.py"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"run {run + 1}: {r.stdout[-1500:]}{r.stderr[-1500:]}"
        assert "RecursionError" not in r.stdout + r.stderr
    base = temproot / f"pytest-of-{getpass.getuser()}"
    runs = sorted(p.name for p in base.iterdir()
                  if p.name.startswith("pytest-") and p.name[7:].isdigit())
    assert runs == ["pytest-2", "pytest-3", "pytest-4"]
    remove_tree(temproot)  # the three kept runs' deep trees: never left for pytest's rmtree
