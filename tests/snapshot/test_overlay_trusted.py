"""overlayfs snapshotter, trusted mutables (FileOp's path): no mount, a taken-over `tip/`
tree, and an upperdir written from the recorded diff. The upperdir must be exactly what
overlay expects (entries, whiteouts) and a real overlay mount of the chain must show the
tree; parents mounted or viewed elsewhere, merges, and crashes mid-step are covered."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from treehelp import commit_tree, read_tree, write_tree
from llb.snapshot import Store
from llb.snapshot.layers import Change
from llb.snapshot.metadata import is_opaque, is_whiteout
from llb.snapshot.mount import mount_overlay, mounts_under, unmount

BASE = {"a/x": b"x", "a/y": b"y", "b/z": b"z", "b/deep/w": b"w", "c.txt": b"c",
        "d/e": b"e", "d/keep/k": b"k", "link": "->c.txt"}


def _replace(path: Path, data: bytes) -> None:
    """A trusted write: temp file renamed over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.rename(tmp, path)


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path)


def _mounted_tree(store, ref) -> dict:
    """The tree a real read-only overlay mount of ref's layers shows (never its tip)."""
    mnt = store.new_temp("check")
    mnt.mkdir()
    lowers = store._driver.lowers(ref.id)
    assert all(not d.endswith("/tip") for d in lowers)
    empty = store.new_temp("empty")
    empty.mkdir()
    mount_overlay(mnt, store.root, lowers + [os.path.relpath(empty, store.root)])
    try:
        return read_tree(mnt)
    finally:
        unmount(mnt)
        os.rmdir(mnt)
        os.rmdir(empty)


def _step(store, parent):
    """One trusted step touching every kind of change; returns (ref, expected tree)."""
    m = store.prepare(parent, trusted=True)
    with m.mount() as p:
        assert mounts_under(m.dir) == []  # a trusted mutable is never mounted
        _replace(p / "a/x", b"x2")
        os.unlink(p / "a/y")
        _rmtree(p / "b")
        (p / "a/sub").mkdir()
        (p / "a/sub/n").write_bytes(b"n")
        _rmtree(p / "d")                       # d replaced by a new directory
        (p / "d").mkdir()
        (p / "d/keep").mkdir()
        (p / "d/keep/k2").write_bytes(b"k2")
        os.chmod(p / "a", 0o700)
        os.link(p / "a/sub/n", p / "hard")    # a hardlink inside the layer
    ref = m.commit()
    expected = {"a": None, "a/x": b"x2", "a/sub": None, "a/sub/n": b"n", "c.txt": b"c",
                "d": None, "d/keep": None, "d/keep/k2": b"k2", "link": "->c.txt",
                "hard": b"n"}
    return ref, expected


def _entries(upper: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            rel = str(p.relative_to(upper))
            if is_whiteout(st):
                out[rel] = "whiteout"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "opaque-dir" if is_opaque(p) else "dir"
            else:
                out[rel] = p.read_bytes().decode() if stat.S_ISREG(st.st_mode) else "other"
    return out


def test_upper_of_a_trusted_step_holds_exactly_its_changes(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, BASE)
    ref, _ = _step(store, base)
    assert ref.layer_chain()[-1].changes() == [
        Change("a", "modify"), Change("a/sub", "add"), Change("a/sub/n", "add"),
        Change("a/x", "modify"), Change("a/y", "delete"), Change("b", "delete"),
        Change("d/e", "delete"), Change("d/keep/k", "delete"), Change("d/keep/k2", "add"),
        Change("hard", "add")]
    upper = store.snapshot_dir(ref.id) / "fs"
    assert _entries(upper) == {
        "a": "dir", "a/sub": "dir", "a/sub/n": "n", "a/x": "x2", "a/y": "whiteout",
        "b": "whiteout", "d": "dir", "d/e": "whiteout", "d/keep": "dir",
        "d/keep/k": "whiteout", "d/keep/k2": "k2", "hard": "n"}
    assert stat.S_IMODE(os.lstat(upper / "a").st_mode) == 0o700
    assert os.lstat(upper / "hard").st_ino == os.lstat(upper / "a/sub/n").st_ino
    wo = os.lstat(upper / "b")
    assert stat.S_ISCHR(wo.st_mode) and wo.st_rdev == os.makedev(0, 0)
    # the step's tree is kept as the snapshot's tip (never one of its mount's layers)
    assert read_tree(store.snapshot_dir(ref.id) / "tip")["a/x"] == b"x2"


def test_real_overlay_mount_of_a_trusted_chain_shows_the_tree(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, BASE)
    ref, expected = _step(store, base)
    ref2 = commit_tree(store, ref, {"a/sub/n2": b"n2"}, delete=("c.txt",), trusted=True)
    expected2 = dict(expected, **{"a/sub/n2": b"n2"})
    del expected2["c.txt"]
    assert _mounted_tree(store, ref) == expected
    assert _mounted_tree(store, ref2) == expected2
    with store.view(ref2) as p:  # the tip
        assert p == store.snapshot_dir(ref2.id) / "tip"
        assert read_tree(p) == expected2
        assert stat.S_IMODE(os.lstat(p / "a").st_mode) == 0o700
    # an untrusted child is a real overlay mount of that chain
    m = store.prepare(ref2)
    with m.mount() as p:
        assert mounts_under(m.dir) != []
        assert read_tree(p) == expected2
        (p / "exec-out").write_bytes(b"o")
    ref3 = m.commit()
    assert ref3.layer_chain()[-1].changes() == [Change("exec-out", "add")]
    # a merge replays the recorded layers: the same tree
    with store.view(store.merge([ref3])) as p:
        assert read_tree(p) == dict(expected2, **{"exec-out": b"o"})


def test_committed_inodes_survive_the_next_trusted_step(overlay_store):
    store = overlay_store
    r1 = commit_tree(store, None, {"f": b"1"})
    m = store.prepare(r1, trusted=True)
    with m.mount() as p:
        _replace(p / "f", b"2")
        (p / "g").write_bytes(b"g")
    r2 = m.commit()
    r3 = commit_tree(store, r2, {}, delete=("g",), trusted=True)
    m = store.prepare(r3, trusted=True)
    with m.mount() as p:
        _replace(p / "f", b"4")
    r4 = m.commit()
    for ref, tree in ((r1, {"f": b"1"}), (r2, {"f": b"2", "g": b"g"}), (r3, {"f": b"2"}),
                      (r4, {"f": b"4"})):
        with store.view(ref) as p:
            assert read_tree(p) == tree
        assert _mounted_tree(store, ref) == tree
    assert (store.snapshot_dir(r2.id) / "fs/g").read_bytes() == b"g"


def test_trusted_child_of_a_viewed_or_mounted_parent(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, {"f": b"1", "d/g": b"g"})
    parent = commit_tree(store, base, {"p": b"p"}, trusted=True)
    want = {"f": b"1", "d": None, "d/g": b"g", "p": b"p"}
    m_exec = store.prepare(parent)  # an exec mount of the parent, open throughout
    with store.view(parent) as v, m_exec.mount() as mp:
        a = commit_tree(store, parent, {"a": b"a"}, delete=("d",), trusted=True)
        b = commit_tree(store, parent, {"b": b"b"}, trusted=True)  # tip taken: rebuilt
        assert read_tree(v) == want
        assert read_tree(mp) == want
    m_exec.discard()
    with store.view(a) as p:
        assert read_tree(p) == {"f": b"1", "p": b"p", "a": b"a"}
    with store.view(b) as p:
        assert read_tree(p) == dict(want, b=b"b")


def test_trusted_child_of_a_merge_and_of_a_diff(overlay_store):
    store = overlay_store
    x = commit_tree(store, None, {"x": b"x", "same": b"1"})
    y = commit_tree(store, None, {"y": b"y", "same": b"2"})
    merged = store.merge([x, y])
    child = commit_tree(store, merged, {"z": b"z"}, delete=("x",), trusted=True)
    assert child.layer_chain()[-1].changes() == [Change("x", "delete"), Change("z", "add")]
    with store.view(child) as p:
        assert read_tree(p) == {"y": b"y", "same": b"2", "z": b"z"}
    assert _entries(store.snapshot_dir(child.id) / "fs") == {"x": "whiteout", "z": "z"}
    d = store.diff(x, commit_tree(store, x, {"w": b"w"}))
    child2 = commit_tree(store, d, {"v": b"v"}, trusted=True)
    with store.view(child2) as p:
        assert read_tree(p) == {"w": b"w", "v": b"v"}


def test_discarded_trusted_step_leaves_parent_whole(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, {"f": b"1"})
    parent = commit_tree(store, base, {"g": b"g"}, trusted=True)
    m = store.prepare(parent, trusted=True)
    with m.mount() as p:
        write_tree(p, {"junk": b"j"})
        os.unlink(p / "f")
    m.discard()
    assert not (store.snapshot_dir(parent.id) / "tip").exists()  # taken, then thrown away
    child = commit_tree(store, parent, {"h": b"h"}, trusted=True)
    with store.view(child) as p:
        assert read_tree(p) == {"f": b"1", "g": b"g", "h": b"h"}


_CRASH = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{tests!r}, {tests!r} + "/../helpers"]
    from pathlib import Path
    from treehelp import commit_tree
    from llb.snapshot import Store
    import llb.snapshot.store as st
    import llb.snapshot.upper as up

    root, where = Path(sys.argv[1]), sys.argv[2]
    store = Store(root, "overlayfs")
    base = commit_tree(store, None, {{"f": b"1"}})
    parent = commit_tree(store, base, {{"g": b"g"}}, trusted=True)  # has a tip
    store.lease(parent.id, "test")
    print(parent.id, flush=True)

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "upper":          # killed half-way through writing the upperdir
        real = up.make_whiteout
        up.make_whiteout = die
    elif where == "publish-row":  # snapshot renamed into place, no row yet
        st.Store._publish_row = die
    m = store.prepare(parent, trusted=True)
    with m.mount() as p:
        (p / "new").write_bytes(b"n")
        os.unlink(p / "f")
        if where == "writing":
            die()
    m.commit()
    print("not killed", flush=True)
""")


@pytest.mark.parametrize("where", ["writing", "upper", "publish-row"])
def test_kill_mid_trusted_step_leaves_root_consistent(tmp_path, where):
    from storehelp import overlay_reason
    if overlay_reason(tmp_path):
        pytest.skip("overlay mounts unavailable")
    script = tmp_path / "helper.py"
    script.write_text(_CRASH.format(tests=str(Path(__file__).parent)))
    root = tmp_path / "root"
    proc = subprocess.run([sys.executable, str(script), str(root), where],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    parent_id = proc.stdout.split()[0]
    with Store(root, "overlayfs") as store:
        store.prune()
        assert sorted(store.snapshot_ids()) == sorted(os.listdir(root / "snapshots"))
        assert len(store.snapshot_ids()) == 2  # base and parent; nothing half-made
        assert mounts_under(root) == []
        parent = store.get(parent_id)
        with store.view(parent) as p:
            assert read_tree(p) == {"f": b"1", "g": b"g"}
        child = commit_tree(store, parent, {"h": b"h"}, trusted=True)  # tip rebuilt
        with store.view(child) as p:
            assert read_tree(p) == {"f": b"1", "g": b"g", "h": b"h"}


def test_big_parent_without_tip_is_mounted_and_a_tip_is_still_taken(overlay_store, monkeypatch):
    import llb.snapshot.overlay as ov
    store = overlay_store
    base = commit_tree(store, None, {f"f{i}": b"%d" % i for i in range(6)})
    chain1 = commit_tree(store, base, {"c1": b"1"}, trusted=True)  # small: tree built
    monkeypatch.setattr(ov, "BUILD_BUDGET", 3)
    m = store.prepare(chain1, trusted=True)  # big, but its tip is there: taken
    with m.mount() as p:
        assert mounts_under(m.dir) == []
        (p / "c2").write_bytes(b"2")
    chain2 = m.commit()
    m = store.prepare(base, trusted=True)  # big and no tip: an overlay mount
    with m.mount() as p:
        assert mounts_under(m.dir) != []
        _replace(p / "f0", b"new")
        os.unlink(p / "f1")
    branch = m.commit()
    assert not (store.snapshot_dir(branch.id) / "tip").exists()
    assert branch.layer_chain()[-1].changes() == [Change("f0", "modify"), Change("f1", "delete")]
    want = {f"f{i}": b"%d" % i for i in range(6)}
    with store.view(chain2) as p:
        assert read_tree(p) == dict(want, c1=b"1", c2=b"2")
    with store.view(branch) as p:
        del want["f1"]
        assert read_tree(p) == dict(want, f0=b"new")


def test_a_viewed_tip_is_never_taken(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, {"f": b"1"})
    parent = commit_tree(store, base, {"g": b"g"}, trusted=True)
    tip = store.snapshot_dir(parent.id) / "tip"
    with store.view(parent) as v:
        assert v == tip
        child = commit_tree(store, parent, {"h": b"h"}, delete=("f",), trusted=True)
        assert read_tree(v) == {"f": b"1", "g": b"g"}  # untouched while read
    assert tip.is_dir()
    later = commit_tree(store, parent, {"i": b"i"}, trusted=True)  # now it is taken
    assert not tip.exists()
    with store.view(parent) as p:  # a mount again
        assert p != tip and read_tree(p) == {"f": b"1", "g": b"g"}
    with store.view(child) as p:
        assert read_tree(p) == {"g": b"g", "h": b"h"}
    assert _mounted_tree(store, later) == {"f": b"1", "g": b"g", "i": b"i"}


def test_type_changes_in_a_trusted_step_show_through_a_real_mount(overlay_store):
    store = overlay_store
    base = commit_tree(store, None, {"was_file": b"f", "was_dir/a": b"a", "was_dir/s/b": b"b",
                                     "lnk": "->was_file"})
    m = store.prepare(base, trusted=True)
    with m.mount() as p:
        os.unlink(p / "was_file")
        (p / "was_file").mkdir()
        (p / "was_file/in").write_bytes(b"in")
        _rmtree(p / "was_dir")
        (p / "was_dir").write_bytes(b"now a file")
        os.unlink(p / "lnk")
        (p / "lnk").mkdir()
    ref = m.commit()
    want = {"was_file": None, "was_file/in": b"in", "was_dir": b"now a file", "lnk": None}
    assert ref.layer_chain()[-1].changes() == [
        Change("lnk", "modify"), Change("was_dir", "modify"), Change("was_file", "modify"),
        Change("was_file/in", "add")]
    assert _mounted_tree(store, ref) == want
    child = commit_tree(store, ref, {"was_file/in2": b"2"}, trusted=True)
    assert _mounted_tree(store, child) == dict(want, **{"was_file/in2": b"2"})
    with store.view(store.merge([base, child])) as p:
        assert read_tree(p) == dict(want, **{"was_file/in2": b"2"})


def test_a_chain_on_a_big_base_builds_its_tree_after_enough_mounted_steps(overlay_store,
                                                                           monkeypatch):
    import llb.snapshot.overlay as ov
    store = overlay_store
    monkeypatch.setattr(ov, "BUILD_BUDGET", 3)
    monkeypatch.setattr(ov, "STEP_ENTRIES", 4)
    ref = commit_tree(store, None, {f"f{i}": b"%d" % i for i in range(6)})
    mounted = []
    for i in range(5):
        m = store.prepare(ref, trusted=True)
        with m.mount() as p:
            mounted.append(mounts_under(m.dir) != [])
            (p / f"n{i}").write_bytes(b"n")
        ref = m.commit()
    # steps 1-2 mounted (6, then 7 entries > 3, 4); step 3 counts 8 <= 2 * 4 and builds;
    # then tips are taken
    assert mounted == [True, True, False, False, False]
    assert _mounted_tree(store, ref) == {**{f"f{i}": b"%d" % i for i in range(6)},
                                         **{f"n{i}": b"n" for i in range(5)}}
