"""`llb solve --output`: a directory the user may edit, a tar file or a tar on stdout."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from solvehelp import LLB, write

BUILD = '''
import llb

def build():
    ctx = llb.local("ctx")
    a = llb.scratch().file(llb.mkdir("/a", mode=0o750).mkfile("/a/x.txt", b"x", mode=0o600))
    b = llb.scratch().file(llb.copy(ctx, "/", "/b", create_dest_path=True))
    gone = llb.merge([a, b]).file(llb.rm("/a/x.txt"))
    return llb.merge([a, b, gone])
'''


def _ctx(tmp: Path) -> Path:
    d = tmp / "ctx"
    write(d / "one.txt", "one\n")
    write(d / "sub" / "two.txt", "two\n")
    os.symlink("one.txt", d / "link")
    return d


def test_local_export_writes_the_merged_tree(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    out = tmp_path / "out"
    r = llb_root.solve(build, "--local", f"ctx={_ctx(tmp_path)}", "--output",
                       f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert files == ["a", "b", "b/link", "b/one.txt", "b/sub", "b/sub/two.txt"]
    assert (out / "a").stat().st_mode & 0o777 == 0o750
    assert os.readlink(out / "b/link") == "one.txt"
    # the export is a plain copy: editing it leaves the cache alone
    (out / "b/one.txt").write_text("edited")
    again = tmp_path / "again"
    r = llb_root.solve(build, "--local", f"ctx={tmp_path / 'ctx'}", "--output",
                       f"type=local,dest={again}")
    assert r.code == 0 and set(r.terminal().values()) == {"cached"}
    assert (again / "b/one.txt").read_text() == "one\n"


def test_tar_export_to_a_file_and_to_stdout(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", BUILD)
    ctx = _ctx(tmp_path)
    tar = tmp_path / "out.tar"
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output", f"type=tar,dest={tar}")
    assert r.code == 0, r.stderr
    with tarfile.open(tar) as tf:
        names = sorted(m.name.rstrip("/") for m in tf.getmembers())
    assert names == ["a", "b", "b/link", "b/one.txt", "b/sub", "b/sub/two.txt"]
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output", "type=tar,dest=-")
    assert r.code == 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert tf.extractfile("b/sub/two.txt").read() == b"two\n"
    assert not [p for p in tmp_path.iterdir() if ".llb-tmp-" in p.name]


FILTERED = '''
import llb

def build():
    return llb.local("ctx", include=["src/**"], exclude=["**/__pycache__"])
'''


def test_local_source_include_exclude_selects_files_and_keys(llb_root: LLB, tmp_path: Path):
    build = write(tmp_path / "build.py", FILTERED)
    ctx = tmp_path / "ctx"
    write(ctx / "src" / "app.py", "print(1)\n")
    write(ctx / "src" / "__pycache__" / "app.pyc", "junk")
    write(ctx / "README", "not selected")
    out = tmp_path / "out"
    r = llb_root.solve(build, "--local", f"ctx={ctx}", "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["src", "src/app.py"]
    write(ctx / "README", "edited")
    write(ctx / "src" / "__pycache__" / "app.pyc", "other junk")
    assert set(llb_root.solve(build, "--local", f"ctx={ctx}").terminal().values()) == {"cached"}
    write(ctx / "src" / "app.py", "print(2)\n")
    assert set(llb_root.solve(build, "--local", f"ctx={ctx}").terminal().values()) == {"done"}


def _records(du_text: str) -> list[str]:
    return [ln for ln in du_text.splitlines() if ln.strip() and not ln.startswith(("ID ", "Total:"))]


def test_an_unwritable_destination_fails_before_solving_and_caches_nothing(llb_root: LLB,
                                                                          tmp_path: Path):
    build = write(tmp_path / "build.py", "import llb\ndef build():\n"
                  "    return llb.scratch().file(llb.mkfile('/x', b'x'))\n")
    for spec in ("type=local,dest=/proc/llb-nope", "type=local,dest=/proc/llb-nope/sub",
                 "type=tar,dest=/proc/llb-nope.tar"):
        r = llb_root.solve(build, "--output", spec, progress="plain")
        assert r.code == 2, (spec, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --output dest=/proc/llb-nope"), lines
        assert "cannot write there" in lines[0]
        du = llb_root("du")
        assert du.code == 0 and _records(du.text) == [], du.text
    # a missing destination that can be created is probed without being left behind
    dest = tmp_path / "new" / "out"
    bad = write(tmp_path / "bad.py", "import llb\ndef build():\n    return llb.local('ctx')\n")
    r = llb_root.solve(bad, "--output", f"type=local,dest={dest}")
    assert r.code == 2 and "no --local mapping" in r.stderr and not dest.parent.exists()
    r = llb_root.solve(build, "--output", f"type=local,dest={dest}")
    assert r.code == 0, r.stderr
    assert (dest / "x").read_bytes() == b"x" and sorted(os.listdir(dest)) == ["x"]
    assert len(_records(llb_root("du").text)) == 2
