"""A wildcard copy's cache key covers exactly what the copy reads: both go through Go's
filepath.Match (llb.fsutil.match), as BuildKit does. The key used to come from Python's
fnmatch, which reads `[!a]` as "not a" and `[^a]` as "^ or a", the other way round from
Go: editing a file the copy read then left its key unchanged, and the solve returned the
file's old content as CACHED."""

from __future__ import annotations

from pathlib import Path

import pytest

from llb.solver.checksum import copy_matches
from llb.solver.patterns import resolve_wildcards
from llb.ops import Copy
from solvehelp import LLB, write

BUILD = '''
import llb

def build():
    ctx = llb.local("ctx")
    base = llb.scratch().file(llb.mkdir("/out"))
    return base.file(llb.copy(ctx, %r, "/out/", allow_wildcard=True))
'''


@pytest.mark.parametrize("pattern, read", [
    ("/[!a]*", ["!x", "a1"]),   # Go: a class of "!" and "a"; fnmatch: anything but "a"
    ("/[^a]*", ["!x", "^y", "b1"]),  # Go: anything but "a"; fnmatch: "^" or "a"
])
def test_editing_a_file_the_wildcard_copy_reads_is_never_served_from_cache(
        llb_root: LLB, tmp_path: Path, pattern: str, read: list[str]):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name in ("a1", "b1", "!x", "^y"):
        (ctx / name).write_text(f"{name} v1")
    build = write(tmp_path / "build.py", BUILD % pattern)

    def solve(n: int) -> dict[str, str]:
        out = tmp_path / f"out{n}"
        r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output", f"type=local,dest={out}")
        assert r.code == 0, r.stderr
        return {p.name: p.read_text() for p in (out / "out").iterdir()}

    assert solve(1) == {name: f"{name} v1" for name in read}
    for name in read:
        (ctx / name).write_text(f"{name} v2")
        assert solve(2 + read.index(name))[name] == f"{name} v2"


def test_the_copy_checksum_covers_the_paths_the_copy_reads(tmp_path: Path):
    for rel in ("a1", "b1", "!x", "^y", "d1/a", "d1/b", "d2/x/a", "e[1]", "*star"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    for pattern, want in [
        ("/[!a]*", ["!x", "a1"]), ("/[^a]*", ["!x", "*star", "^y", "b1", "d1", "d2", "e[1]"]),
        ("/d*/a", ["d1/a"]), ("/d?/*", ["d1/a", "d1/b", "d2/x"]), ("/*/x/*", ["d2/x/a"]),
        ("/[a-b]1", ["a1", "b1"]), ("/\\**", ["*star"]), ("/e\\[*", ["e[1]"]),
    ]:
        c = Copy(source=1, src=pattern, dest="/o", allow_wildcard=True)
        read = resolve_wildcards(str(tmp_path), pattern, False)  # what the copy reads
        assert read == want, pattern
        assert [rel for rel, _ in copy_matches(tmp_path, c)] == read, pattern
