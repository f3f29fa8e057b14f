"""The exec-based cases of BuildKit's client/mergediff_test.go and client_mergeop_test.go
(testMergeOp), ported with our busybox root in place of the alpine and busybox images and
run on both snapshotters through the real solver (in process, one root per snapshotter so
the busybox base is built once).

Expected trees are written like fstest appliers: a list of steps applied in order, where a
State step fills in that state's solved tree (BuildKit's contentsOf)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from exechelp import LOCALS, link_groups, load_busybox, needs_runc, tree_of

import llb

pytestmark = needs_runc

Tree = dict[str, tuple]


# ---------------------------------------------------------------------------------- solving


@pytest.fixture(scope="module", params=["native", "overlayfs"])
def solved(request, tmp_path_factory):
    from llb.snapshot.mount import overlay_works
    from llb.solver.solve import Solver

    tmp = tmp_path_factory.mktemp(f"mergediff-{request.param}")
    if request.param == "overlayfs" and not overlay_works(tmp / "probe"):
        pytest.skip("overlayfs mounts do not work here")
    solver = Solver(tmp / "root", request.param, workers=2)
    yield Solved(solver)
    solver.close()


class Solved:
    def __init__(self, solver):
        self.solver = solver
        self.kind = solver.store.kind

    def tree(self, state: llb.State) -> Tree:
        return self._with_view(state, tree_of)

    def links(self, state: llb.State) -> set[frozenset[str]]:
        return self._with_view(state, link_groups)

    def _with_view(self, state: llb.State, fn):
        res = self.solver.solve(state.to_definition(), LOCALS)
        if res.ref is None:
            return {} if fn is tree_of else set()
        with self.solver.store.view(res.ref) as p:
            return fn(Path(p))


# ------------------------------------------------------------------------- fstest-like steps

Step = Callable[[Tree], None] | llb.State


def D(path: str, mode: int) -> Step:
    def step(t: Tree) -> None:
        _remove_non_dir(t, path)
        t[path] = ("d", mode)
    return step


def F(path: str, data: bytes | None, mode: int) -> Step:
    def step(t: Tree) -> None:
        _remove(t, path)
        t[path] = ("f", mode, data or b"")
    return step


def Fifo(path: str, mode: int) -> Step:
    def step(t: Tree) -> None:
        t[path] = ("p", mode)
    return step


def Chr(path: str, mode: int, major: int, minor: int) -> Step:
    def step(t: Tree) -> None:
        t[path] = ("c", mode, major << 8 | minor)
    return step


def Rm(path: str) -> Step:
    return lambda t: _remove(t, path)


def _remove(t: Tree, path: str) -> None:
    for p in [p for p in t if p == path or p.startswith(path + "/")]:
        del t[p]


def _remove_non_dir(t: Tree, path: str) -> None:
    if path in t and t[path][0] != "d":
        del t[path]


def expect(s: Solved, *steps: Step) -> Tree:
    t: Tree = {}
    for step in steps:
        if isinstance(step, llb.State):
            t.update(s.tree(step))
        else:
            step(t)
    return t


# ---------------------------------------------------------------------------------- states

_BB = load_busybox()


def busybox() -> llb.State:
    return _BB.busybox()


def run_shell(base: llb.State, *cmds: str) -> llb.State:
    return run_shell_exec(base, *cmds).root()


def run_shell_exec(base: llb.State, *cmds: str, mounts=()) -> llb.ExecState:
    return base.run(["sh", "-c", " && ".join(cmds)], mounts=list(mounts))


def chain_run_shells(base: llb.State, *cmdss: list[str]) -> llb.State:
    for cmds in cmdss:
        base = run_shell(base, *cmds)
    return base


def rich_base() -> llb.State:
    a = (llb.mkfile("/shuffleFile1", b"shuffleFile1", 0o644)
         .mkdir("/shuffleDir1", 0o755).mkdir("/shuffleDir1/shuffleSubdir1", 0o755)
         .mkfile("/shuffleDir1/shuffleSubfile1", b"", 0o644)
         .mkfile("/shuffleDir1/shuffleSubdir1/shuffleSubfile2", b"", 0o644))
    for top, n in (("/unmodifiedDir", "1"), ("/modifyDir", "2")):
        k = int(n)
        a = (a.mkdir(top, 0o755)
             .mkdir(f"{top}/chmodSubdir{n}", 0o755).mkdir(f"{top}/deleteSubdir{n}", 0o755)
             .mkdir(f"{top}/opaqueDir{n}", 0o755)
             .mkdir(f"{top}/opaqueDir{n}/opaqueSubdir{n}", 0o755)
             .mkdir(f"{top}/overrideSubdir{n}", 0o755)
             .mkdir(f"{top}/shuffleDir{k + 1}", 0o755)
             .mkdir(f"{top}/shuffleDir{k + 1}/shuffleSubdir{k + 1}", 0o755)
             .mkfile(f"{top}/chmodFile{n}", f"chmodFile{n}".encode(), 0o644)
             .mkfile(f"{top}/modifyContentFile{n}", f"modifyContentFile{n}".encode(), 0o644)
             .mkfile(f"{top}/deleteFile{n}", b"", 0o644)
             .mkfile(f"{top}/opaqueDir{n}/opaqueFile{2 * k - 1}", b"", 0o644)
             .mkfile(f"{top}/opaqueDir{n}/opaqueSubdir{n}/opaqueFile{2 * k}", b"", 0o644)
             .mkfile(f"{top}/overrideFile{2 * k - 1}", b"", 0o644)
             .mkfile(f"{top}/overrideFile{2 * k}", b"", 0o644)
             .mkfile(f"{top}/shuffleFile{k + 1}", f"shuffleFile{k + 1}".encode(), 0o644)
             .mkfile(f"{top}/shuffleDir{k + 1}/shuffleSubfile{2 * k + 1}", b"", 0o644)
             .mkfile(f"{top}/shuffleDir{k + 1}/shuffleSubdir{k + 1}/shuffleSubfile{2 * k + 2}",
                     b"", 0o644))
    return busybox().file(a)


BASE_DIFF_CMDS = ["chmod 0700 /modifyDir"]
BASE_DIFF = [D("/unmodifiedDir", 0o755), D("/modifyDir", 0o700)]

SLICES: dict[str, tuple[list[str], list[Step]]] = {
    "NewFiles": (
        ["mkdir /newdir1", "touch /newdir1/newfile1", "touch /unmodifiedDir/newfile2",
         "touch /modifyDir/newfile3"],
        [D("/newdir1", 0o755), F("/newdir1/newfile1", None, 0o644),
         F("/unmodifiedDir/newfile2", None, 0o644), F("/modifyDir/newfile3", None, 0o644)]),
    "ModifiedFiles": (
        ["chmod 0444 /unmodifiedDir/chmodFile1",
         "echo -n modifyContentFile0 > /unmodifiedDir/modifyContentFile1",
         "chmod 0440 /modifyDir/chmodFile2",
         "echo -n modifyContentFile0 > /modifyDir/modifyContentFile2"],
        [F("/unmodifiedDir/chmodFile1", b"chmodFile1", 0o444),
         F("/unmodifiedDir/modifyContentFile1", b"modifyContentFile0", 0o644),
         F("/modifyDir/chmodFile2", b"chmodFile2", 0o440),
         F("/modifyDir/modifyContentFile2", b"modifyContentFile0", 0o644)]),
    "NewDirs": (
        ["mkdir -p /newdir2/newsubdir1", "mkdir /unmodifiedDir/newsubdir2",
         "mkdir /modifyDir/newsubdir3"],
        [D("/newdir2", 0o755), D("/newdir2/newsubdir1", 0o755),
         D("/unmodifiedDir/newsubdir2", 0o755), D("/modifyDir/newsubdir3", 0o755)]),
    "ModifiedDirs": (
        ["chmod 0700 /unmodifiedDir/chmodSubdir1", "chmod 0770 /modifyDir/chmodSubdir2"],
        [D("/unmodifiedDir/chmodSubdir1", 0o700), D("/modifyDir/chmodSubdir2", 0o770)]),
    "OverrideDirs": (
        ["rm -rf /unmodifiedDir/overrideSubdir1",
         "echo -n overrideSubdir1 > /unmodifiedDir/overrideSubdir1",
         "rm -rf /modifyDir/overrideSubdir2",
         "echo -n overrideSubdir2 > /modifyDir/overrideSubdir2"],
        [F("/unmodifiedDir/overrideSubdir1", b"overrideSubdir1", 0o644),
         F("/modifyDir/overrideSubdir2", b"overrideSubdir2", 0o644)]),
    "OverrideFiles": (
        ["rm /unmodifiedDir/overrideFile1", "mkdir -m 0700 /unmodifiedDir/overrideFile1",
         "rm /unmodifiedDir/overrideFile2", "mkdir -m 0750 /unmodifiedDir/overrideFile2",
         "mkdir -m 0770 /unmodifiedDir/overrideFile2/newsubdir4",
         "touch /unmodifiedDir/overrideFile2/newfile4",
         "touch /unmodifiedDir/overrideFile2/newsubdir4/newfile5",
         "rm /modifyDir/overrideFile3", "mkdir -m 0700 /modifyDir/overrideFile3",
         "rm /modifyDir/overrideFile4", "mkdir -m 0750 /modifyDir/overrideFile4",
         "mkdir -m 0770 /modifyDir/overrideFile4/newsubdir5",
         "touch /modifyDir/overrideFile4/newfile6",
         "touch /modifyDir/overrideFile4/newsubdir5/newfile7"],
        [D("/unmodifiedDir/overrideFile1", 0o700), D("/unmodifiedDir/overrideFile2", 0o750),
         D("/unmodifiedDir/overrideFile2/newsubdir4", 0o770),
         F("/unmodifiedDir/overrideFile2/newfile4", None, 0o644),
         F("/unmodifiedDir/overrideFile2/newsubdir4/newfile5", None, 0o644),
         D("/modifyDir/overrideFile3", 0o700), D("/modifyDir/overrideFile4", 0o750),
         D("/modifyDir/overrideFile4/newsubdir5", 0o770),
         F("/modifyDir/overrideFile4/newfile6", None, 0o644),
         F("/modifyDir/overrideFile4/newsubdir5/newfile7", None, 0o644)]),
    "DeleteFiles": (["rm /unmodifiedDir/deleteFile1", "rm /modifyDir/deleteFile2"], []),
    "DeleteDirs": (["rm -rf /unmodifiedDir/deleteSubdir1", "rm -rf /modifyDir/deleteSubdir2"],
                   []),
    "OpaqueDirs": (
        ["rm -rf /unmodifiedDir/opaqueDir1",
         "mkdir -p /unmodifiedDir/opaqueDir1/newOpaqueSubdir1",
         "touch /unmodifiedDir/opaqueDir1/newOpaqueFile1",
         "touch /unmodifiedDir/opaqueDir1/newOpaqueSubdir1/newOpaqueFile2",
         "rm -rf /modifyDir/opaqueDir2", "mkdir -p /modifyDir/opaqueDir2/newOpaqueSubdir2",
         "touch /modifyDir/opaqueDir2/newOpaqueFile3",
         "touch /modifyDir/opaqueDir2/newOpaqueSubdir2/newOpaqueFile4"],
        [D("/unmodifiedDir/opaqueDir1", 0o755),
         D("/unmodifiedDir/opaqueDir1/newOpaqueSubdir1", 0o755),
         F("/unmodifiedDir/opaqueDir1/newOpaqueFile1", None, 0o644),
         F("/unmodifiedDir/opaqueDir1/newOpaqueSubdir1/newOpaqueFile2", None, 0o644),
         D("/modifyDir/opaqueDir2", 0o755), D("/modifyDir/opaqueDir2/newOpaqueSubdir2", 0o755),
         F("/modifyDir/opaqueDir2/newOpaqueFile3", None, 0o644),
         F("/modifyDir/opaqueDir2/newOpaqueSubdir2/newOpaqueFile4", None, 0o644)]),
    "ShuffleFiles": (
        ["mv /shuffleFile1 /shuffleFile1tmp", "mv /shuffleFile1tmp /shuffleFile1",
         "mv /unmodifiedDir/shuffleFile2 /unmodifiedDir/shuffleFile2tmp",
         "mv /unmodifiedDir/shuffleFile2tmp /unmodifiedDir/shuffleFile2",
         "mv /modifyDir/shuffleFile3 /modifyDir/shuffleFile3tmp",
         "mv /modifyDir/shuffleFile3tmp /modifyDir/shuffleFile3"],
        [Rm("/unmodifiedDir")]),
    "Fifos": (
        ["mknod /unmodifiedDir/fifo1 p", "mknod /modifyDir/fifo2 p"],
        [Fifo("/unmodifiedDir/fifo1", 0o644), Fifo("/modifyDir/fifo2", 0o644)]),
    "Chardevs": (
        ["mknod /unmodifiedDir/null1 c 1 3", "mknod /modifyDir/null2 c 1 3"],
        [Chr("/unmodifiedDir/null1", 0o644, 1, 3), Chr("/modifyDir/null2", 0o644, 1, 3)]),
}
# what the combined tests expect: every slice but the deletes, shuffles and chardevs
_COMBINED = ["NewFiles", "ModifiedFiles", "NewDirs", "ModifiedDirs", "OverrideDirs",
             "OverrideFiles", "DeleteFiles", "DeleteDirs", "OpaqueDirs", "ShuffleFiles", "Fifos"]


def _slice_diff(name: str) -> llb.State:
    cmds, _ = SLICES[name]
    return llb.diff(rich_base(), run_shell(rich_base(), *(BASE_DIFF_CMDS + cmds)))


@pytest.mark.parametrize("name", list(SLICES))
def test_diff_slice(solved, name):
    _, contents = SLICES[name]
    want = expect(solved, *BASE_DIFF, *contents)
    assert solved.tree(_slice_diff(name)) == want


@pytest.mark.parametrize("name,removed", [
    ("DeleteFiles", ["/unmodifiedDir/deleteFile1", "/modifyDir/deleteFile2"]),
    ("DeleteDirs", ["/unmodifiedDir/deleteSubdir1", "/modifyDir/deleteSubdir2"]),
    ("ShuffleFiles", []),
])
def test_diff_slice_merge(solved, name, removed):
    state = llb.merge([rich_base(), _slice_diff(name)])
    want = expect(solved, rich_base(), *BASE_DIFF, *[Rm(p) for p in removed])
    assert solved.tree(state) == want


def test_diff_opaque_dirs_merge(solved):
    rebased = rich_base().file(
        llb.mkfile("/unmodifiedDir/opaqueDir1/rebaseFile1", b"", 0o644)
        .mkfile("/unmodifiedDir/opaqueDir1/opaqueSubdir1/rebaseFile2", b"", 0o644)
        .mkfile("/modifyDir/opaqueDir2/rebaseFile3", b"", 0o644)
        .mkfile("/modifyDir/opaqueDir2/opaqueSubdir2/rebaseFile4", b"", 0o644))
    state = llb.merge([rebased, _slice_diff("OpaqueDirs")])
    want = expect(solved, rich_base(), *BASE_DIFF, Rm("/unmodifiedDir/opaqueDir1"),
                  Rm("/modifyDir/opaqueDir2"), *SLICES["OpaqueDirs"][1],
                  F("/unmodifiedDir/opaqueDir1/rebaseFile1", None, 0o644),
                  F("/modifyDir/opaqueDir2/rebaseFile3", None, 0o644))
    assert solved.tree(state) == want


def test_diff_combined_single_layer(solved):
    cmds = BASE_DIFF_CMDS + [c for n in _COMBINED for c in SLICES[n][0]]
    state = llb.diff(rich_base(), run_shell(rich_base(), *cmds))
    want = expect(solved, *BASE_DIFF, *[s for n in _COMBINED if n != "ShuffleFiles"
                                        for s in SLICES[n][1]])
    assert solved.tree(state) == want


def test_diff_combined_multi_layer(solved):
    cmdss = [BASE_DIFF_CMDS] + [SLICES[n][0] for n in _COMBINED]
    state = llb.diff(rich_base(), chain_run_shells(rich_base(), *cmdss))
    want = expect(solved, *BASE_DIFF, *[s for n in _COMBINED if n != "ShuffleFiles"
                                        for s in SLICES[n][1]])
    assert solved.tree(state) == want


def test_diff_opaque_dirs_on_exec_base(solved):
    base = run_shell(busybox(), "mkdir -p /parentdir/dir/subdir",
                     "touch /parentdir/dir/A /parentdir/dir/B /parentdir/dir/subdir/C")
    state = llb.merge([
        run_shell(busybox(), "mkdir -p /parentdir/dir/subdir",
                  "touch /parentdir/dir/A /parentdir/dir/B /parentdir/dir/D"),
        llb.diff(base, run_shell(base, "rm -rf /parentdir/dir", "mkdir /parentdir/dir",
                                 "touch /parentdir/dir/E")),
    ])
    want = solved.tree(run_shell(busybox(), "mkdir -p /parentdir/dir",
                                 "touch /parentdir/dir/D", "touch /parentdir/dir/E"))
    assert solved.tree(state) == want


# ---------------------------------------------------------------------------------- symlinks


def _link_foo_to_bar() -> llb.State:
    return llb.diff(busybox(), run_shell(busybox(), "mkdir -p /bar", "ln -s /bar /foo"))


def _plus_foo() -> llb.State:
    return run_shell(busybox(), "mkdir /foo")


def _delete_foo() -> llb.State:
    return llb.diff(_plus_foo(), run_shell(_plus_foo(), "rm -rf /foo"))


def _create_foo_file() -> llb.State:
    return llb.diff(_plus_foo(), run_shell(_plus_foo(), "touch /foo/file"))


SYMLINK_CASES = {
    "DirOverridesSymlink": (
        lambda: [busybox(), _link_foo_to_bar(), _create_foo_file()],
        ["mkdir /bar", "mkdir /foo", "touch /foo/file"]),
    "SymlinkOverridesDir": (
        lambda: [busybox(), _create_foo_file(), _link_foo_to_bar()],
        ["mkdir /bar", "ln -s /bar /foo"]),
    "SymlinkOverridesSymlink": (
        lambda: [busybox(),
                 llb.diff(busybox(), run_shell(busybox(), "mkdir /1 /2", "ln -s /1 /a",
                                               "ln -s /2 /a/b")),
                 llb.diff(busybox(), run_shell(busybox(), "mkdir /3", "ln -s /3 /a"))],
        ["mkdir /1 /2 /3", "ln -s /3 /a", "ln -s /2 /1/b"]),
    "DeleteDoesNotFollowSymlink": (
        lambda: [busybox(), _link_foo_to_bar(), _delete_foo()],
        ["mkdir /bar"]),
    "DeleteDoesNotFollowParentSymlink": (
        lambda: [busybox(), _link_foo_to_bar().file(llb.mkfile("/bar/file", b"", 0o644)),
                 llb.diff(_create_foo_file(), _create_foo_file().file(llb.rm("/foo/file")))],
        ["mkdir /bar", "touch /bar/file", "mkdir /foo"]),
    "CircularSymlinks": (
        lambda: [busybox(), llb.diff(busybox(), run_shell(busybox(), "ln -s /2 /1",
                                                          "ln -s /1 /2")),
                 llb.scratch().file(llb.mkfile("/1", b"foo", 0o644))],
        ["echo -n foo > /1", "ln -s /1 /2"]),
    "CircularDirSymlink": (
        lambda: [busybox(),
                 llb.diff(busybox(), run_shell(busybox(), "mkdir /foo", "ln -s ../foo /foo/link")),
                 llb.diff(busybox(), run_shell(busybox(), "mkdir -p /foo/link",
                                               "touch /foo/link/file"))],
        ["mkdir -p /foo/link", "touch /foo/link/file"]),
    "CircularParentDirSymlinks": (
        lambda: [busybox(), llb.diff(busybox(), run_shell(busybox(), "ln -s /2 /1",
                                                          "ln -s /1 /2")),
                 llb.diff(busybox(), run_shell(busybox(), "mkdir /1", "echo -n foo > /1/file"))],
        ["mkdir /1", "echo -n foo > /1/file", "ln -s /1 /2"]),
}


@pytest.mark.parametrize("name", list(SYMLINK_CASES))
def test_symlinks(solved, name):
    inputs, cmds = SYMLINK_CASES[name]
    assert solved.tree(llb.merge(inputs())) == solved.tree(run_shell(busybox(), *cmds))


# ---------------------------------------------------------------------------------- hardlinks


def _linked_files() -> llb.State:
    return llb.diff(busybox(), run_shell(busybox(), "mkdir /dir", "touch /dir/1",
                                         "ln /dir/1 /dir/2", "chmod 0600 /dir/2"))


HARDLINKED = {"/dir": ("d", 0o755), "/dir/1": ("f", 0o600, b""), "/dir/2": ("f", 0o600, b"")}


def test_diff_hardlinks(solved):
    assert solved.tree(_linked_files()) == HARDLINKED
    assert solved.links(_linked_files()) == {frozenset({"/dir/1", "/dir/2"})}


def test_diff_hardlink_changes_do_not_propagate_between_snapshots(solved):
    ex = run_shell_exec(busybox(), "chmod 0777 /A/dir/1",
                        mounts=[llb.mount("/A", _linked_files()),
                                llb.mount("/B", _linked_files())])
    assert solved.tree(ex.get_mount("/B")) == HARDLINKED
    assert solved.links(ex.get_mount("/B")) == {frozenset({"/dir/1", "/dir/2"})}
    # (on overlayfs the copy-up of /A/dir/1 breaks its link to /A/dir/2, as in BuildKit)
    assert solved.tree(ex.get_mount("/A"))["/dir/1"] == ("f", 0o777, b"")


# ---------------------------------------------------------------------------------- exec root/mount


def _split_diff_exec() -> llb.ExecState:
    return run_shell_exec(busybox(), "touch /root/A", "touch /mnt/B",
                          mounts=[llb.mount("/mnt", busybox())])


def test_diff_exec_root(solved):
    state = llb.diff(busybox(), _split_diff_exec().root())
    assert solved.tree(state) == {"/root": ("d", 0o700), "/root/A": ("f", 0o644, b"")}


def test_diff_exec_mount(solved):
    state = llb.diff(busybox(), _split_diff_exec().get_mount("/mnt"))
    assert solved.tree(state) == {"/B": ("f", 0o644, b"")}


# ---------------------------------------------------------------------------------- testMergeOp


def test_merge_op_exec_on_merge_chain(solved):
    state_a = llb.scratch().file(
        llb.mkfile("/foo", b"A", 0o755).mkfile("/a", b"A", 0o755).mkdir("/bar", 0o700)
        .mkfile("/bar/A", b"A", 0o755))
    state_b = state_a.file(llb.rm("/foo")).file(llb.mkfile("/b", b"B", 0o755)).file(
        llb.mkfile("/bar/B", b"B", 0o754))
    state_c = llb.scratch().file(
        llb.mkfile("/foo", b"C", 0o755).mkfile("/c", b"C", 0o755).mkdir("/bar", 0o755)
        .mkfile("/bar/A", b"C", 0o400))
    merge_a = llb.merge([state_a, state_c])
    merge_b = llb.merge([state_c, state_b])
    state_d = llb.scratch().file(llb.mkdir("/qaz", 0o755))
    merge_c = llb.merge([merge_a, merge_b, state_d])
    assert solved.tree(merge_c) == {
        "/a": ("f", 0o755, b"A"), "/b": ("f", 0o755, b"B"), "/c": ("f", 0o755, b"C"),
        "/bar": ("d", 0o700), "/bar/A": ("f", 0o755, b"A"), "/bar/B": ("f", 0o754, b"B"),
        "/qaz": ("d", 0o755)}

    run_a = run_shell(llb.merge([busybox(), merge_c]),
                      "rm /a", "mkdir /a", "mv /b /c /a/",
                      "rm -rf /bar", "mkdir -m 0755 /bar", "echo -n D > /bar/D",
                      "rm -rf /qaz", "touch /qaz")
    state_e = llb.scratch().file(
        llb.mkfile("/foo", b"E", 0o755).mkdir("/bar", 0o755).mkfile("/bar/A", b"A", 0o755)
        .mkfile("/bar/E", b"", 0o755))
    merge_d = llb.merge([state_e, run_a])
    want = busybox().file(
        llb.mkdir("a", 0o755).mkfile("a/b", b"B", 0o755).mkfile("a/c", b"C", 0o755)
        .mkdir("bar", 0o755).mkfile("bar/D", b"D", 0o644).mkfile("bar/E", b"", 0o755)
        .mkfile("qaz", b"", 0o644))
    # /foo from state_e is gone: state_b deleted it, and state_b is inside merge_d
    assert solved.tree(merge_d) == solved.tree(want)
