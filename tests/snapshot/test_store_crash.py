"""Crash safety and two processes on one root: a process killed with SIGKILL mid-commit
leaves no half snapshot visible, and the next open removes its temporaries and mounts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llb.snapshot import Store
from llb.snapshot.mount import mounts_under

_HELPER = textwrap.dedent("""
    import os, signal, sys, time
    sys.path[:0] = [{tests!r}, {tests!r} + "/../helpers"]
    from pathlib import Path
    from treehelp import commit_tree
    from llb.snapshot import Store
    import llb.snapshot.store as st

    root, kind, where = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    store = Store(root, kind)
    base = commit_tree(store, None, {{"base": b"b"}})
    store.lease(base.id, "test")
    print(base.id, flush=True)

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "publish-row":      # directory renamed into place, row not yet written
        st.Store._publish_row = die
    elif where == "before-publish":  # diff computed, snapshot still a temporary
        st.Store._publish = die
    elif where == "mounted":         # killed while a mutable and a view are mounted
        m = store.prepare(base)
        with m.mount() as p, store.view(base) as v:
            (p / "half").write_bytes(b"x")
            die()
    elif where == "taken":           # a trusted child took the parent's tree (native)
        m = store.prepare(base, trusted=True)
        with m.mount() as p:
            (p / "half").write_bytes(b"x")
            die()
    elif where == "merge":           # killed after the merged tree was written
        import llb.snapshot.driver as drv
        real = drv.Driver.build_tree
        def build_then_die(self, dest, chain):
            real(self, dest, chain)
            die()
        drv.Driver.build_tree = build_then_die
        other = commit_tree(store, None, {{"other": b"o"}})
        store.merge([base, other])
    elif where == "loop":            # killed at a random moment of a busy commit loop
        ref = base
        print("go", flush=True)
        while True:
            ref = commit_tree(store, ref, {{f"f{{time.time_ns()}}": b"x" * 4096}})
    m = store.prepare(base)
    with m.mount() as p:
        (p / "new").write_bytes(b"n" * 100000)
    m.commit()
    print("not killed", flush=True)
""")


def _kinds():
    kinds = ["native"]
    if os.geteuid() == 0:
        kinds.insert(0, "overlayfs")
    return kinds


def _run(tmp_path: Path, kind: str, where: str) -> str:
    script = tmp_path / "helper.py"
    script.write_text(_HELPER.format(tests=str(Path(__file__).parent)))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "root"), kind, where],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.split()[0]


def _check_consistent(root: Path, kind: str, base_id: str) -> None:
    with Store(root, kind) as store:
        ids = store.snapshot_ids()
        assert ids == [base_id]
        assert sorted(os.listdir(root / "snapshots")) == [base_id]
        # only this store's own session is left in tmp/
        assert sorted(os.listdir(root / "tmp")) == sorted(
            [store.session.id, store.session.id + ".lock"])
        assert mounts_under(root) == []
        assert store.leases(base_id) == ["test"]  # the dead session's leases are gone
        with store.view(store.get(base_id)) as p:
            assert os.listdir(p) == ["base"]


@pytest.mark.parametrize("kind", _kinds())
@pytest.mark.parametrize("where", ["publish-row", "before-publish", "mounted", "taken",
                                   "merge"])
def test_kill_mid_commit_leaves_root_consistent(tmp_path, kind, where):
    if kind == "overlayfs":
        from storehelp import overlay_reason
        if overlay_reason(tmp_path):
            pytest.skip("overlay mounts unavailable")
    base_id = _run(tmp_path, kind, where)
    if where == "publish-row":  # the orphan directory really was left behind
        assert len(os.listdir(tmp_path / "root" / "snapshots")) == 2
    if where == "merge":  # the unmerged input is unleased: drop it to compare
        with Store(tmp_path / "root", kind) as store:
            store.prune()
    _check_consistent(tmp_path / "root", kind, base_id)


@pytest.mark.parametrize("kind", _kinds())
def test_kill_at_random_moment_of_commit_loop(tmp_path, kind):
    script = tmp_path / "helper.py"
    script.write_text(_HELPER.format(tests=str(Path(__file__).parent)))
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "root"), kind,
                                 "loop"], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        assert proc.stdout.readline().strip() == "go"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Store(tmp_path / "root", kind) as store:
            ids = set(store.snapshot_ids())
            assert set(os.listdir(tmp_path / "root" / "snapshots")) == ids
            assert mounts_under(tmp_path / "root") == []
            for sid in ids:  # every visible snapshot is whole
                chain = store.get(sid).layer_chain()
                with store.view(store.get(sid)) as p:
                    assert len(os.listdir(p)) == len(chain)
        proc.stdout.close()


def test_two_processes_share_a_root(tmp_path):
    """Another live process's temporaries survive our open; commits from both land."""
    root = tmp_path / "root"
    code = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parent.parent / "helpers")!r}]
        from treehelp import commit_tree
        from llb.snapshot import Store
        s = Store({str(root)!r}, "native")
        m = s.prepare(None)
        with m.mount() as p:
            (p / "pending").write_bytes(b"p")
            print("ready", flush=True)
            sys.stdin.readline()
        r = m.commit()
        s.lease(r.id, "other")
        print(r.id, flush=True)
        s.close()
    """)
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "ready"
    with Store(root, "native") as mine:  # its open must not clean the live session
        from treehelp import commit_tree
        ours = commit_tree(mine, None, {"mine": b"m"})
        mine.lease(ours.id, "me")
        other.stdin.write("\n")
        other.stdin.flush()
        theirs = other.stdout.readline().strip()
        assert other.wait(timeout=30) == 0
        assert sorted(mine.snapshot_ids()) == sorted([ours.id, theirs])
        with mine.view(mine.get(theirs)) as p:
            assert (p / "pending").read_bytes() == b"p"
