"""`llb du` agrees with the disk (tests/helpers/rootcheck.py says exactly what that means)
where bytes move between snapshots behind the records' backs, or sit in no record: an exec
on an exec's result (the native snapshotter hands the parent's private tree to the child),
and a snapshot committed but never recorded (unreferenced: du lists it, the next prune
removes it). Both snapshotters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from exechelp import BUSYBOX_PRELUDE, LOCALS, build_root, needs_runc
from rootcheck import du_disagreements

pytestmark = needs_runc

LLB = str(Path(sys.executable).parent / "llb")

BUILD = f'''
{BUSYBOX_PRELUDE}

def build():
    s = _bb.busybox()
    for i in range(int(os.environ["N"])):
        s = s.run(["sh", "-c", f"dd if=/dev/urandom of=/f{{i}} bs=1k count=64 2>/dev/null"]
                  ).root()
    return s
'''


@pytest.fixture(params=["overlayfs", "native"])
def root(request, tmp_path: Path) -> tuple[Path, str]:
    return build_root(request.param, tmp_path, BUILD)


def _solve(root: Path, snapshotter: str, n: int) -> subprocess.Popen:
    argv = [LLB, "solve", str(root.parent / "build.py"), "--root", str(root), "--snapshotter",
            snapshotter, "--progress", "plain", *[f"--local={k}={v}" for k, v in LOCALS.items()]]
    return subprocess.Popen(argv, env=dict(os.environ, N=str(n)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_du_agrees_as_execs_build_on_execs(root):
    root, snapshotter = root
    for n in (1, 2, 3):  # each solve runs one exec more, on the last one's result
        p = _solve(root, snapshotter, n)
        assert p.wait(timeout=180) == 0, p.stderr.read().decode()
        assert du_disagreements(root, LLB) == []


def test_du_counts_snapshots_no_record_names_until_a_prune(root):
    """A snapshot committed but never recorded (a solve killed between the two) is on the
    disk: du lists it as unreferenced, and the next prune removes it."""
    from treehelp import commit_tree

    from llb.snapshot import Store

    root, snapshotter = root
    p = _solve(root, snapshotter, 1)
    assert p.wait(timeout=180) == 0, p.stderr.read().decode()
    store = Store(root, snapshotter)
    commit_tree(store, None, {"orphan": os.urandom(50_000)})
    store.close()  # nothing leases it, no live session holds it
    du = subprocess.run([LLB, "du", "--root", str(root)], capture_output=True, text=True)
    other = [line for line in du.stdout.splitlines() if line.startswith("(other snapshots)")]
    assert len(other) == 1 and "(1 unreferenced" in other[0], du.stdout
    assert du_disagreements(root, LLB) == []
    pr = subprocess.run([LLB, "prune", "--root", str(root)], capture_output=True, text=True)
    assert pr.returncode == 0, pr.stderr
    du = subprocess.run([LLB, "du", "--root", str(root)], capture_output=True, text=True)
    assert "(other snapshots)" not in du.stdout
    assert du_disagreements(root, LLB) == []
