"""BuildKit's merge/diff cases (client/mergediff_test.go, diffOpTestCases), ported as our own
tests with their exact expected trees, run through the real Store for both snapshotters.

Images are replaced by small hand-made bases (`alpine`, `busybox`: different trees, like the
originals), and `runShell(state, cmds...)` by the same file changes written into a snapshot
prepared on that state (what the exec would have done), so no case needs exec.
Each test names the BuildKit cases it ports. Not ported here: TestDiffExecRoot,
TestDiffExecMount and TestDiffHardlinkChangesDoNotPropagateBetweenSnapshots (they test exec
mounts), TestDiffSingleLayerBlobReuse and TestDiffSingleLayerOnMergeBlobReuse (image export).
"""

from __future__ import annotations

import os

import pytest

from mergetree import (ALPINE, Built, Chr, D, E, F, Fifo, H, L, alpine, chmod, hardlink, merge, mkchardev,
                       mkdir, mkfifo, mkfile, rename, rm, symlink)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: chown, mknod, security.* xattrs")

# ------------------------------------------------------------------ the bases


def busybox(store) -> Built:
    # BuildKit adds /proc and /sys to busybox so they do not show up in diffs of an exec
    return Built(store).do(
        mkdir("bin"), mkfile("bin/busybox", b"busybox", 0o755), symlink("busybox", "bin/sh"),
        mkdir("etc"), mkfile("etc/group", b"root:x:0:\n")).do(mkdir("proc")).do(mkdir("sys"))


BUSYBOX = {"bin": D(), "bin/busybox": F(b"busybox", 0o755), "bin/sh": L("busybox"),
           "etc": D(), "etc/group": F(b"root:x:0:\n"), "proc": D(), "sys": D()}


def without(tree: dict[str, E], *paths: str) -> dict[str, E]:
    """tree with paths (and everything below them) removed, like fstest.RemoveAll."""
    return {k: v for k, v in tree.items()
            if not any(k == p or k.startswith(p + "/") for p in paths)}


# ------------------------------------------------------------------ empty and scratch diffs


def test_diff_scratch_self_and_lower_scratch(store):
    # ports TestDiffScratch, TestDiffSelf, TestDiffSelfDeletes, TestDiffLowerScratch
    scratch = Built(store)
    scratch.diff(scratch).check({})
    a = alpine(store)
    a.diff(a).check({})
    merge(a, a.diff(a)).check(ALPINE)
    scratch.diff(a).check(ALPINE)


def test_diff_lower_scratch_deletes(store):
    # ports TestDiffLowerScratchDeletes
    first = Built(store).do(mkfile("foo", b"A", 0o755))
    upper = Built(store).do(mkfile("foo", b"B", 0o644)).do(rm("foo")).do(mkfile("bar", b""))
    merge(first, Built(store).diff(upper)).check({"bar": F(b"")})


def test_diff_upper_scratch(store):
    # ports TestDiffUpperScratch
    a = alpine(store)
    merge(a, Built(store).do(mkfile("foo", b"foo")), a.diff(Built(store))).check(
        {"foo": F(b"foo")})


# ------------------------------------------------------------------ basic diff slices

BASE_OPS = [
    mkfile("shuffleFile1", b"shuffleFile1"),
    mkdir("shuffleDir1"), mkdir("shuffleDir1/shuffleSubdir1"),
    mkfile("shuffleDir1/shuffleSubfile1"), mkfile("shuffleDir1/shuffleSubdir1/shuffleSubfile2"),
    mkdir("unmodifiedDir"), mkdir("unmodifiedDir/chmodSubdir1"),
    mkdir("unmodifiedDir/deleteSubdir1"), mkdir("unmodifiedDir/opaqueDir1"),
    mkdir("unmodifiedDir/opaqueDir1/opaqueSubdir1"), mkdir("unmodifiedDir/overrideSubdir1"),
    mkdir("unmodifiedDir/shuffleDir2"), mkdir("unmodifiedDir/shuffleDir2/shuffleSubdir2"),
    mkfile("unmodifiedDir/chmodFile1", b"chmodFile1"),
    mkfile("unmodifiedDir/modifyContentFile1", b"modifyContentFile1"),
    mkfile("unmodifiedDir/deleteFile1"), mkfile("unmodifiedDir/opaqueDir1/opaqueFile1"),
    mkfile("unmodifiedDir/opaqueDir1/opaqueSubdir1/opaqueFile2"),
    mkfile("unmodifiedDir/overrideFile1"), mkfile("unmodifiedDir/overrideFile2"),
    mkfile("unmodifiedDir/shuffleFile2", b"shuffleFile2"),
    mkfile("unmodifiedDir/shuffleDir2/shuffleSubfile3"),
    mkfile("unmodifiedDir/shuffleDir2/shuffleSubdir2/shuffleSubfile4"),
    mkdir("modifyDir"), mkdir("modifyDir/chmodSubdir2"), mkdir("modifyDir/deleteSubdir2"),
    mkdir("modifyDir/opaqueDir2"), mkdir("modifyDir/opaqueDir2/opaqueSubdir2"),
    mkdir("modifyDir/overrideSubdir2"), mkdir("modifyDir/shuffleDir3"),
    mkdir("modifyDir/shuffleDir3/shuffleSubdir3"),
    mkfile("modifyDir/chmodFile2", b"chmodFile2"),
    mkfile("modifyDir/modifyContentFile2", b"modifyContentFile2"),
    mkfile("modifyDir/deleteFile2"), mkfile("modifyDir/opaqueDir2/opaqueFile3"),
    mkfile("modifyDir/opaqueDir2/opaqueSubdir2/opaqueFile4"),
    mkfile("modifyDir/overrideFile3"), mkfile("modifyDir/overrideFile4"),
    mkfile("modifyDir/shuffleFile3", b"shuffleFile3"),
    mkfile("modifyDir/shuffleDir3/shuffleSubfile4"),
    mkfile("modifyDir/shuffleDir3/shuffleSubdir3/shuffleSubfile6"),
]

BASE = {**ALPINE,
        "shuffleFile1": F(b"shuffleFile1"), "shuffleDir1": D(),
        "shuffleDir1/shuffleSubdir1": D(), "shuffleDir1/shuffleSubfile1": F(),
        "shuffleDir1/shuffleSubdir1/shuffleSubfile2": F()}
# (dir, its number, opaque files, override files, shuffle dir number, shuffle subfiles)
for _d, _c, (_o1, _o2), (_v1, _v2), _s, (_f1, _f2) in (
        ("unmodifiedDir", 1, (1, 2), (1, 2), 2, (3, 4)),
        ("modifyDir", 2, (3, 4), (3, 4), 3, (4, 6))):
    BASE.update({
        _d: D(), f"{_d}/chmodSubdir{_c}": D(), f"{_d}/deleteSubdir{_c}": D(),
        f"{_d}/opaqueDir{_c}": D(), f"{_d}/opaqueDir{_c}/opaqueSubdir{_c}": D(),
        f"{_d}/overrideSubdir{_c}": D(), f"{_d}/shuffleDir{_s}": D(),
        f"{_d}/shuffleDir{_s}/shuffleSubdir{_s}": D(),
        f"{_d}/chmodFile{_c}": F(f"chmodFile{_c}".encode()),
        f"{_d}/modifyContentFile{_c}": F(f"modifyContentFile{_c}".encode()),
        f"{_d}/deleteFile{_c}": F(), f"{_d}/opaqueDir{_c}/opaqueFile{_o1}": F(),
        f"{_d}/opaqueDir{_c}/opaqueSubdir{_c}/opaqueFile{_o2}": F(),
        f"{_d}/overrideFile{_v1}": F(), f"{_d}/overrideFile{_v2}": F(),
        f"{_d}/shuffleFile{_s}": F(f"shuffleFile{_s}".encode()),
        f"{_d}/shuffleDir{_s}/shuffleSubfile{_f1}": F(),
        f"{_d}/shuffleDir{_s}/shuffleSubdir{_s}/shuffleSubfile{_f2}": F(),
    })

BASE_DIFF_OPS = [chmod("modifyDir", 0o700)]
BASE_DIFF = {"unmodifiedDir": D(), "modifyDir": D(0o700)}


def _mv_back_and_forth(rel: str):
    return [rename(rel, rel + "tmp"), rename(rel + "tmp", rel)]


# name -> (ops the shell would run, what the diff then holds beyond BASE_DIFF)
SLICES: dict[str, tuple[list, dict[str, E]]] = {
    "NewFiles": ([mkdir("newdir1"), mkfile("newdir1/newfile1"),
                  mkfile("unmodifiedDir/newfile2"), mkfile("modifyDir/newfile3")],
                 {"newdir1": D(), "newdir1/newfile1": F(), "unmodifiedDir/newfile2": F(),
                  "modifyDir/newfile3": F()}),
    "ModifiedFiles": ([chmod("unmodifiedDir/chmodFile1", 0o444),
                       mkfile("unmodifiedDir/modifyContentFile1", b"modifyContentFile0"),
                       chmod("modifyDir/chmodFile2", 0o440),
                       mkfile("modifyDir/modifyContentFile2", b"modifyContentFile0")],
                      {"unmodifiedDir/chmodFile1": F(b"chmodFile1", 0o444),
                       "unmodifiedDir/modifyContentFile1": F(b"modifyContentFile0"),
                       "modifyDir/chmodFile2": F(b"chmodFile2", 0o440),
                       "modifyDir/modifyContentFile2": F(b"modifyContentFile0")}),
    "NewDirs": ([mkdir("newdir2"), mkdir("newdir2/newsubdir1"),
                 mkdir("unmodifiedDir/newsubdir2"), mkdir("modifyDir/newsubdir3")],
                {"newdir2": D(), "newdir2/newsubdir1": D(), "unmodifiedDir/newsubdir2": D(),
                 "modifyDir/newsubdir3": D()}),
    "ModifiedDirs": ([chmod("unmodifiedDir/chmodSubdir1", 0o700),
                      chmod("modifyDir/chmodSubdir2", 0o770)],
                     {"unmodifiedDir/chmodSubdir1": D(0o700),
                      "modifyDir/chmodSubdir2": D(0o770)}),
    "OverrideDirs": ([rm("unmodifiedDir/overrideSubdir1"),
                      mkfile("unmodifiedDir/overrideSubdir1", b"overrideSubdir1"),
                      rm("modifyDir/overrideSubdir2"),
                      mkfile("modifyDir/overrideSubdir2", b"overrideSubdir2")],
                     {"unmodifiedDir/overrideSubdir1": F(b"overrideSubdir1"),
                      "modifyDir/overrideSubdir2": F(b"overrideSubdir2")}),
    "OverrideFiles": ([rm("unmodifiedDir/overrideFile1"),
                       mkdir("unmodifiedDir/overrideFile1", 0o700),
                       rm("unmodifiedDir/overrideFile2"),
                       mkdir("unmodifiedDir/overrideFile2", 0o750),
                       mkdir("unmodifiedDir/overrideFile2/newsubdir4", 0o770),
                       mkfile("unmodifiedDir/overrideFile2/newfile4"),
                       mkfile("unmodifiedDir/overrideFile2/newsubdir4/newfile5"),
                       rm("modifyDir/overrideFile3"), mkdir("modifyDir/overrideFile3", 0o700),
                       rm("modifyDir/overrideFile4"), mkdir("modifyDir/overrideFile4", 0o750),
                       mkdir("modifyDir/overrideFile4/newsubdir5", 0o770),
                       mkfile("modifyDir/overrideFile4/newfile6"),
                       mkfile("modifyDir/overrideFile4/newsubdir5/newfile7")],
                      {"unmodifiedDir/overrideFile1": D(0o700),
                       "unmodifiedDir/overrideFile2": D(0o750),
                       "unmodifiedDir/overrideFile2/newsubdir4": D(0o770),
                       "unmodifiedDir/overrideFile2/newfile4": F(),
                       "unmodifiedDir/overrideFile2/newsubdir4/newfile5": F(),
                       "modifyDir/overrideFile3": D(0o700),
                       "modifyDir/overrideFile4": D(0o750),
                       "modifyDir/overrideFile4/newsubdir5": D(0o770),
                       "modifyDir/overrideFile4/newfile6": F(),
                       "modifyDir/overrideFile4/newsubdir5/newfile7": F()}),
    "DeleteFiles": ([rm("unmodifiedDir/deleteFile1"), rm("modifyDir/deleteFile2")], {}),
    "DeleteDirs": ([rm("unmodifiedDir/deleteSubdir1"), rm("modifyDir/deleteSubdir2")], {}),
    "OpaqueDirs": ([rm("unmodifiedDir/opaqueDir1"), mkdir("unmodifiedDir/opaqueDir1"),
                    mkdir("unmodifiedDir/opaqueDir1/newOpaqueSubdir1"),
                    mkfile("unmodifiedDir/opaqueDir1/newOpaqueFile1"),
                    mkfile("unmodifiedDir/opaqueDir1/newOpaqueSubdir1/newOpaqueFile2"),
                    rm("modifyDir/opaqueDir2"), mkdir("modifyDir/opaqueDir2"),
                    mkdir("modifyDir/opaqueDir2/newOpaqueSubdir2"),
                    mkfile("modifyDir/opaqueDir2/newOpaqueFile3"),
                    mkfile("modifyDir/opaqueDir2/newOpaqueSubdir2/newOpaqueFile4")],
                   {"unmodifiedDir/opaqueDir1": D(),
                    "unmodifiedDir/opaqueDir1/newOpaqueSubdir1": D(),
                    "unmodifiedDir/opaqueDir1/newOpaqueFile1": F(),
                    "unmodifiedDir/opaqueDir1/newOpaqueSubdir1/newOpaqueFile2": F(),
                    "modifyDir/opaqueDir2": D(), "modifyDir/opaqueDir2/newOpaqueSubdir2": D(),
                    "modifyDir/opaqueDir2/newOpaqueFile3": F(),
                    "modifyDir/opaqueDir2/newOpaqueSubdir2/newOpaqueFile4": F()}),
    "ShuffleFiles": (_mv_back_and_forth("shuffleFile1")
                     + _mv_back_and_forth("unmodifiedDir/shuffleFile2")
                     + _mv_back_and_forth("modifyDir/shuffleFile3"), {}),
    "Fifos": ([mkfifo("unmodifiedDir/fifo1"), mkfifo("modifyDir/fifo2")],
              {"unmodifiedDir/fifo1": Fifo(0o644), "modifyDir/fifo2": Fifo(0o644)}),
    "Chardevs": ([mkchardev("unmodifiedDir/null1", 1, 3), mkchardev("modifyDir/null2", 1, 3)],
                 {"unmodifiedDir/null1": Chr(1, 3), "modifyDir/null2": Chr(1, 3)}),
}
# BuildKit's "combined" cases join every slice but the chardevs, deletes and shuffles add
# no contents of their own.
COMBINED = ["NewFiles", "ModifiedFiles", "NewDirs", "ModifiedDirs", "OverrideDirs",
            "OverrideFiles", "DeleteFiles", "DeleteDirs", "OpaqueDirs", "ShuffleFiles", "Fifos"]


def base_state(store) -> Built:
    return alpine(store).do(*BASE_OPS[:5]).do(*BASE_OPS[5:24]).do(*BASE_OPS[24:])


@pytest.mark.parametrize("name", [n for n in SLICES if n != "ShuffleFiles"])
def test_diff_slices(store, name):
    # ports TestDiffNewFiles, TestDiffModifiedFiles, TestDiffNewDirs, TestDiffModifiedDirs,
    # TestDiffOverrideDirs, TestDiffOverrideFiles, TestDiffDeleteFiles, TestDiffDeleteDirs,
    # TestDiffOpaqueDirs (the first), TestDiffFifos, TestDiffChardevs
    ops, contents = SLICES[name]
    base = base_state(store)
    base.diff(base.do(*BASE_DIFF_OPS, *ops)).check({**BASE_DIFF, **contents})


def test_diff_shuffle_files(store):
    # ports TestDiffShuffleFiles: moving files away and back is no change; only the chmod
    # of /modifyDir remains
    ops, _ = SLICES["ShuffleFiles"]
    base = base_state(store)
    base.diff(base.do(*BASE_DIFF_OPS, *ops)).check(without(BASE_DIFF, "unmodifiedDir"))


def test_diff_shuffle_files_merge(store):
    # ports TestDiffShuffleFilesMerge
    ops, _ = SLICES["ShuffleFiles"]
    base = base_state(store)
    merge(base, base.diff(base.do(*BASE_DIFF_OPS, *ops))).check({**BASE, "modifyDir": D(0o700)})


def test_diff_deletes_merged(store):
    # ports TestDiffDeleteFilesMerge, TestDiffDeleteDirsMerge
    base = base_state(store)
    files = base.diff(base.do(*BASE_DIFF_OPS, *SLICES["DeleteFiles"][0]))
    merge(base, files).check(without({**BASE, **BASE_DIFF}, "unmodifiedDir/deleteFile1",
                                     "modifyDir/deleteFile2"))
    dirs = base.diff(base.do(*BASE_DIFF_OPS, *SLICES["DeleteDirs"][0]))
    merge(base, dirs).check(without({**BASE, **BASE_DIFF}, "unmodifiedDir/deleteSubdir1",
                                    "modifyDir/deleteSubdir2"))


def test_diff_unmatched_delete(store):
    # ports TestDiffUnmatchedDelete: the deleting layer's parent directory shows up
    base = base_state(store)
    extra = base.do(mkdir("extradir")).do(mkfile("extradir/extrafile", b"", 0o755))
    merge(base, extra.diff(extra.do(rm("extradir/extrafile")))).check(
        {**BASE, "extradir": D()})


def test_diff_opaque_dirs_merge(store):
    # ports TestDiffOpaqueDirsMerge: opaque dirs become explicit deletions of what the
    # layer's own lower had, so files only the other input had survive
    base = base_state(store)
    rebased = (base.do(mkfile("unmodifiedDir/opaqueDir1/rebaseFile1"))
               .do(mkfile("unmodifiedDir/opaqueDir1/opaqueSubdir1/rebaseFile2"))
               .do(mkfile("modifyDir/opaqueDir2/rebaseFile3"))
               .do(mkfile("modifyDir/opaqueDir2/opaqueSubdir2/rebaseFile4")))
    ops, contents = SLICES["OpaqueDirs"]
    d = base.diff(base.do(*BASE_DIFF_OPS, *ops))
    want = without({**BASE, **BASE_DIFF}, "unmodifiedDir/opaqueDir1", "modifyDir/opaqueDir2")
    want.update(contents)
    want["unmodifiedDir/opaqueDir1/rebaseFile1"] = F()
    want["modifyDir/opaqueDir2/rebaseFile3"] = F()
    merge(rebased, d).check(want)


def test_diff_combined(store):
    # ports TestDiffCombinedSingleLayer, TestDiffCombinedMultiLayer
    base = base_state(store)
    want = dict(BASE_DIFF)
    for name in COMBINED:
        want.update(SLICES[name][1])
    all_ops = [op for name in COMBINED for op in SLICES[name][0]]
    base.diff(base.do(*BASE_DIFF_OPS, *all_ops)).check(want)
    multi = base.do(*BASE_DIFF_OPS)
    for name in COMBINED:
        multi = multi.do(*SLICES[name][0])
    base.diff(multi).check(want)


def test_diff_opaque_dirs_against_own_lower(store):
    # ports TestDiffOpaqueDirs (the second one, on /parentdir)
    bb = busybox(store).do(mkdir("parentdir"), mkdir("parentdir/dir"),
                           mkdir("parentdir/dir/subdir"), mkfile("parentdir/dir/A"),
                           mkfile("parentdir/dir/B"), mkfile("parentdir/dir/D"))
    base = alpine(store).do(mkdir("parentdir"), mkdir("parentdir/dir"),
                            mkdir("parentdir/dir/subdir"), mkfile("parentdir/dir/A"),
                            mkfile("parentdir/dir/B"), mkfile("parentdir/dir/subdir/C"))
    d = base.diff(base.do(rm("parentdir/dir"), mkdir("parentdir/dir"), mkfile("parentdir/dir/E")))
    merge(bb, d).check({**BUSYBOX, "parentdir": D(), "parentdir/dir": D(),
                        "parentdir/dir/D": F(), "parentdir/dir/E": F()})


# ------------------------------------------------------------------ symlinks


def _link_foo_to_bar(store) -> Built:
    a = alpine(store)
    return a.diff(a.do(mkdir("bar"), symlink("/bar", "foo")))


def _alpine_plus_foo(store) -> Built:
    return alpine(store).do(mkdir("foo"))


def test_diff_dir_overrides_symlink(store):
    # ports TestDiffDirOverridesSymlink
    foo = _alpine_plus_foo(store)
    create_foo_file = foo.diff(foo.do(mkfile("foo/file")))
    merge(busybox(store), _link_foo_to_bar(store), create_foo_file).check(
        {**BUSYBOX, "bar": D(), "foo": D(), "foo/file": F()})


def test_diff_symlink_overrides_dir(store):
    # ports TestDiffSymlinkOverridesDir
    foo = _alpine_plus_foo(store)
    create_foo_file = foo.diff(foo.do(mkfile("foo/file")))
    merge(busybox(store), create_foo_file, _link_foo_to_bar(store)).check(
        {**BUSYBOX, "bar": D(), "foo": L("/bar")})


def test_diff_symlink_overrides_symlink(store):
    # ports TestDiffSymlinkOverridesSymlink ("ln -s /2 /a/b" wrote /1/b through the link)
    a = alpine(store)
    first = a.diff(a.do(mkdir("1"), mkdir("2"), symlink("/1", "a"), symlink("/2", "1/b")))
    second = a.diff(a.do(mkdir("3"), symlink("/3", "a")))
    merge(busybox(store), first, second).check(
        {**BUSYBOX, "1": D(), "2": D(), "3": D(), "a": L("/3"), "1/b": L("/2")})


def test_diff_delete_does_not_follow_symlink(store):
    # ports TestDiffDeleteDoesNotFollowSymlink
    foo = _alpine_plus_foo(store)
    delete_foo = foo.diff(foo.do(rm("foo")))
    merge(busybox(store), _link_foo_to_bar(store), delete_foo).check({**BUSYBOX, "bar": D()})


def test_diff_delete_does_not_follow_parent_symlink(store):
    # ports TestDiffDeleteDoesNotFollowParentSymlink
    foo = _alpine_plus_foo(store)
    create_foo_file = foo.diff(foo.do(mkfile("foo/file")))
    link_with_file = _link_foo_to_bar(store).do(mkfile("bar/file"))
    merge(busybox(store), link_with_file,
          create_foo_file.diff(create_foo_file.do(rm("foo/file")))).check(
        {**BUSYBOX, "bar": D(), "bar/file": F(), "foo": D()})


def test_diff_circular_symlinks(store):
    # ports TestDiffCircularSymlinks, TestDiffCircularDirSymlink,
    # TestDiffCircularParentDirSymlinks
    a = alpine(store)
    circular = a.diff(a.do(symlink("/2", "1"), symlink("/1", "2")))
    merge(busybox(store), circular, Built(store).do(mkfile("1", b"foo"))).check(
        {**BUSYBOX, "1": F(b"foo"), "2": L("/1")})

    dir_link = a.diff(a.do(mkdir("foo"), symlink("../foo", "foo/link")))
    over = a.diff(a.do(mkdir("foo"), mkdir("foo/link"), mkfile("foo/link/file")))
    merge(busybox(store), dir_link, over).check(
        {**BUSYBOX, "foo": D(), "foo/link": D(), "foo/link/file": F()})

    into = a.diff(a.do(mkdir("1"), mkfile("1/file", b"foo")))
    merge(busybox(store), circular, into).check(
        {**BUSYBOX, "1": D(), "1/file": F(b"foo"), "2": L("/1")})


# ------------------------------------------------------------------ hardlinks, lazy blobs


def test_diff_hardlinks(store):
    # ports TestDiffHardlinks
    a = alpine(store)
    a.diff(a.do(mkdir("dir"), mkfile("dir/1"), hardlink("dir/1", "dir/2"),
                chmod("dir/2", 0o600))).check(
        {"dir": D(), "dir/1": F(b"", 0o600), "dir/2": H("dir/1")})


def test_diff_lazy_blob_merge(store):
    # ports TestDiffLazyBlobMerge: Merge(A, Diff(A, B)) == B
    bb, a = busybox(store), alpine(store)
    merge(bb, bb.diff(a)).check(ALPINE)


# ------------------------------------------------------------------ diff + merge combinations


@pytest.fixture
def abc(store):
    """BuildKit's a, b, c, deleteC and their merges; each state built once (one vertex)."""
    s = Built(store)
    a = s.do(mkfile("A", b"A"))
    b = s.do(mkfile("B", b"B"))
    c = s.do(mkfile("C", b"C"))
    delete_c = c.do(rm("C"))
    return dict(s=s, a=a, b=b, c=c, ab=merge(a, b), abc=merge(a, b, c),
                ab_delete_c=merge(a, b, delete_c))


def test_diff_merge_combinations(store, abc):
    # ports TestDiffOnlyMerge, TestDiffOfMerges, TestDiffOfMergesWithDeletes,
    # TestDiffSingleLayerOnMerge, TestDiffSingleDeleteLayerOnMerge,
    # TestDiffMultipleLayerOnMerge
    a, b, ab, abc_, abdc = abc["a"], abc["b"], abc["ab"], abc["abc"], abc["ab_delete_c"]
    merge(a.diff(b), b.diff(a)).check({"A": F(b"A")})
    ab.diff(abc_).check({"C": F(b"C")})
    merge(abc_, abc_.diff(abdc)).check({"A": F(b"A"), "B": F(b"B")})
    abdc.diff(abdc.do(mkfile("D", b"D"))).check({"D": F(b"D")})
    merge(abdc, abc_.diff(abc_.do(rm("A")))).check({"B": F(b"B")})
    merge(abdc, abc_.diff(abc_.do(mkfile("D", b"D")).do(rm("A")))).check(
        {"B": F(b"B"), "D": F(b"D")})


def test_diff_nested_layered_merges(store, abc):
    # ports TestDiffNestedLayeredMerges, TestDiffNestedLayeredMergeDeletes
    s, a, ab, abc_ = abc["s"], abc["a"], abc["ab"], abc["abc"]
    nested = merge(abc_.do(mkfile("D", b"D")),
                   merge(a, s.do(mkfile("E", b"E"))).do(rm("A")))
    abc_.diff(nested.do(mkfile("F", b"F"))).check(
        {"D": F(b"D"), "E": F(b"E"), "F": F(b"F")})
    merge(ab.do(mkfile("D", b"D")), abc_.diff(nested.do(rm("D")))).check(
        {"B": F(b"B"), "E": F(b"E")})


def test_diffs_of_diffs_and_diffs_as_parents(store):
    # ports TestDiffOfDiffs, TestDiffOfDiffsWithDeletes, TestDiffAsParentSingleLayer,
    # TestDiffAsParentSingleLayerDelete, TestDiffAsParentMultipleLayers,
    # TestDiffAsParentMultipleLayerDelete
    a = Built(store).do(mkfile("A", b"A"))
    ab = a.do(mkfile("B", b"B"))
    abc_ = ab.do(mkfile("C", b"C"))
    a.diff(ab).diff(a.diff(abc_)).check({"C": F(b"C")})
    merge(abc_, a.diff(abc_).diff(a.diff(ab))).check({"A": F(b"A"), "B": F(b"B")})
    a.diff(ab).do(mkfile("D", b"D")).check({"B": F(b"B"), "D": F(b"D")})
    merge(ab, a.diff(ab).do(rm("B"))).check({"A": F(b"A")})
    a.diff(abc_).do(mkfile("D", b"D")).check({"B": F(b"B"), "C": F(b"C"), "D": F(b"D")})
    merge(ab, a.diff(abc_).do(rm("B"))).check({"A": F(b"A"), "C": F(b"C")})


# ------------------------------------------------------------------ regressions


def test_diff_merge_opaque_regression(store):
    # ports TestDiffMergeOpaqueRegression, TestDiffMergeOpaqueRegressionWithFileOverwrite
    base = Built(store).do(mkdir("dir"))
    merge(base.do(mkfile("dir/a")), base.do(rm("dir")), base.do(mkfile("dir/b"))).check(
        {"dir": D(), "dir/b": F()})
    merge(base.do(mkfile("dir/a")), Built(store).do(mkfile("dir")),
          base.do(mkfile("dir/b"))).check({"dir": D(), "dir/b": F()})
