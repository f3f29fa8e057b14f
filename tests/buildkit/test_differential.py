"""The same program solved by llb locally and by a real buildkitd through
`llb solve --backend buildkit` exports the same tree (kinds, modes, owners, contents, link
targets), for every example and a set of generated programs; and a Go client's definition
solved by `llb solve def.pb` gives BuildKit's tree. Differences BuildKit v0.11.6 has on
purpose are listed in README ("Where llb differs from BuildKit") and normalised here."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from bkhelp import BUILDCTL, llbjson, tree, without_exec_stubs
from goldens import CASES

LLB = str(Path(sys.executable).parent / "llb")
REPO = Path(__file__).resolve().parents[2]
BUSYBOX_DIR = "/bin"  # Debian's busybox-static installs /bin/busybox (Makefile SYS_PKGS)


def _solve(args: list[str], out: Path) -> None:
    p = subprocess.run([LLB, "solve", *args, "--output", f"type=local,dest={out}",
                        "--progress", "plain"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


def _both(tmp_path: Path, daemon, build: str, *extra: str) -> tuple[dict, dict]:
    local, remote = tmp_path / "local", tmp_path / "remote"
    _solve([build, *extra, "--root", str(tmp_path / "root"), "--snapshotter",
            daemon.snapshotter], local)
    _solve([build, *extra, "--backend", "buildkit", "--addr", daemon.addr,
            "--buildctl", str(BUILDCTL)], remote)
    ours, theirs = tree(local), without_exec_stubs(tree(remote))
    assert ours, "the local export is empty"
    return ours, theirs


EXAMPLES = [
    ("examples/hello/build.py", None),
    ("examples/merge/build.py", None),
    ("examples/merge/build.py", "deps"),
    ("examples/merge/build.py", "run"),
    ("examples/busybox/build.py", None),
]


@pytest.mark.parametrize("build,target", EXAMPLES,
                         ids=[f"{b.split('/')[1]}:{t or 'build'}" for b, t in EXAMPLES])
def test_examples_give_buildkits_tree(tmp_path, buildkitd, build, target):
    extra = ["--local", f"busybox={BUSYBOX_DIR}"] + (["--target", target] if target else [])
    ours, theirs = _both(tmp_path, buildkitd, str(REPO / build), *extra)
    assert ours == theirs


def _program(seed: int) -> str:
    """A build file of random file-op chains, merges, diffs with deletions and an exec with
    bind, read-only, scratch, cache and tmpfs mounts, all on a busybox root."""
    rnd = random.Random(seed)
    lines = ["import importlib.util, llb",
             f"spec = importlib.util.spec_from_file_location('bb', {str(REPO / 'examples/busybox/build.py')!r})",
             "bb = importlib.util.module_from_spec(spec); spec.loader.exec_module(bb)",
             "def build():",
             "    base = bb.busybox()",
             "    layers = []"]
    for i in range(rnd.randint(2, 4)):
        actions = [f"llb.mkdir('/d{i}', 0o{rnd.choice(['755', '700', '750'])}, parents=True)"]
        for j in range(rnd.randint(1, 4)):
            actions.append(f"mkfile('/d{i}/f{j}', {('x' * rnd.randint(0, 50))!r}, "
                           f"0o{rnd.choice(['644', '600', '755'])})")
        if rnd.random() < 0.5:
            actions.append(f"mkdir('/d{i}/sub/deeper', 0o755, parents=True)")
        lines.append(f"    s{i} = base.file({'.'.join(actions)})")
        if rnd.random() < 0.7:
            victim = rnd.choice(["/etc/group", "/root", "/tmp", "/etc/passwd"])
            lines.append(f"    s{i} = s{i}.file(llb.rm({victim!r}).mkfile('/gone{i}', 'was {victim}'))")
        lines.append(f"    layers.append(llb.diff(base, s{i}))")
    lines += [
        "    merged = llb.merge([base, *layers])",
        "    ex = merged.run(['sh', '-c', 'mkdir -p /out/r && cp -a /src/. /out/r/ && "
        "ls / > /out/root.txt && echo c >> /cache/n && cat /etc/passwd > /out/passwd 2>&1; "
        "echo tmp > /tmp2/x; true'],",
        "                   mounts=[llb.mount('/src', layers[0], readonly=True),",
        "                           llb.mount('/out', llb.scratch()),",
        f"                           llb.cache_mount('/cache', 'c{seed}'),",
        "                           llb.tmpfs('/tmp2')])",
        "    return llb.merge([merged, ex.get_mount('/out')])",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_programs_give_buildkits_tree(tmp_path, buildkitd, seed):
    build = tmp_path / "build.py"
    build.write_text(_program(seed))
    ours, theirs = _both(tmp_path, buildkitd, str(build), "--local", f"busybox={BUSYBOX_DIR}")
    assert ours == theirs


@pytest.mark.usefixtures("have_llbjson")
@pytest.mark.parametrize("name", ["long chain", "diff, diff against", "merge drops scratch"])
def test_go_client_definition_solved_by_llb_gives_buildkits_tree(tmp_path, buildkitd, name):
    graph = next(c[2] for c in CASES if c[0].startswith(name))
    (tmp_path / "def.pb").write_bytes(llbjson(graph))
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        for f in "xyz":
            (tmp_path / d / f).write_text(f"{d} {f}\n")
    locals_ = ["--local", f"one={tmp_path / 'one'}", "--local", f"two={tmp_path / 'two'}"]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _solve([str(tmp_path / "def.pb"), *locals_, "--root", str(tmp_path / "root")], ours)
    with open(tmp_path / "def.pb", "rb") as stdin:
        p = subprocess.run([str(BUILDCTL), "--addr", buildkitd.addr, "build",
                            "--local", f"one={tmp_path / 'one'}",
                            "--local", f"two={tmp_path / 'two'}",
                            "--output", f"type=local,dest={theirs}"], stdin=stdin,
                           capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert tree(ours) == tree(theirs)
