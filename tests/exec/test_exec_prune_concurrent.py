"""`llb prune` beside running solves (issue 10, item 9): it does not wait for them, removes
what they do not use, says what it skipped, and no solve fails or misses a snapshot. Through
the CLI, both snapshotters."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from exechelp import BUSYBOX_PRELUDE, LOCALS, build_root, needs_runc
from leftovers import containers, mounts_under, processes_with, session_temps

pytestmark = needs_runc

LLB = str(Path(sys.executable).parent / "llb")

BUILD = f'''
{BUSYBOX_PRELUDE}

def build():
    """Variant V: files of its own merged over a shared base, then an exec reading both."""
    v, pause = os.environ["V"], os.environ.get("PAUSE", "0")
    files = llb.scratch().file(llb.mkdir("/v").mkfile(f"/v/{{v}}", f"variant {{v}}\\n"))
    chain = llb.scratch().file(llb.mkfile("/shared", "shared\\n"))
    for i in range(int(v) % 4):
        chain = chain.file(llb.mkfile(f"/c{{i}}", f"{{i}}\\n"))
    root = llb.merge([_bb.busybox(), chain, files])
    cmd = f"cat /shared /v/{{v}} > /out; ls / | grep -c '^c' >> /out; sleep {{pause}}; true"
    return root.run(["sh", "-c", cmd]).root()
'''


def _expected(v: int) -> str:
    return f"shared\nvariant {v}\n{v % 4}\n"


@pytest.fixture(params=["overlayfs", "native"])
def root(request, tmp_path: Path) -> tuple[Path, str]:
    return build_root(request.param, tmp_path, BUILD)


def _solve(root: Path, snapshotter: str, v: int, out: Path, pause: str = "0",
           **kw) -> subprocess.Popen:
    argv = [LLB, "solve", str(root.parent / "build.py"), "--root", str(root),
            "--snapshotter", snapshotter, "--progress", "plain",
            "--output", f"type=local,dest={out}",
            *[f"--local={k}={p}" for k, p in LOCALS.items()]]
    env = dict(os.environ, V=str(v), PAUSE=pause)
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **kw)


def _prune(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LLB, "prune", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120)


def test_prune_does_not_wait_and_skips_what_a_running_solve_uses(root):
    root, snapshotter = root
    first = _solve(root, snapshotter, 1, root.parent / "out1")
    assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    # a solve that sits in its exec while a prune --all runs
    token = str(4000 + random.randrange(4000))
    running = _solve(root, snapshotter, 2, root.parent / "out2", pause=token)
    deadline = time.monotonic() + 120
    while not processes_with(f"sleep {token}"):
        assert running.poll() is None, running.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    p = _prune(root, "--all")
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert running.poll() is None  # it finished while the solve still ran
    assert took < 60
    lines = p.stdout.splitlines()
    removed = int(lines[0].split()[1])
    assert removed >= 1  # variant 1's own records: nothing running uses them
    skipped = [line for line in lines if line.startswith("Skipped")]
    assert skipped and skipped[0].endswith("records in use by running builds")
    assert int(skipped[0].split()[1]) >= 3  # the busybox base and the shared merge inputs
    # stop the sleep: the solve completes with what it held
    subprocess.run(["pkill", "-KILL", "-f", f"^sleep {token}$"], check=False)
    assert running.wait(timeout=120) == 0, running.stderr.read().decode()
    assert (root.parent / "out2" / "out").read_text() == _expected(2)
    # what the prune removed is rebuilt; what it skipped is still a hit
    again = _solve(root, snapshotter, 1, root.parent / "out1b")
    assert again.wait(timeout=120) == 0, again.stderr.read().decode()
    assert (root.parent / "out1b" / "out").read_text() == _expected(1)
    assert containers(root) == [] and mounts_under(root) == [] and session_temps(root) == []


def test_prunes_in_a_loop_beside_solves_in_a_loop(root):
    """Three solvers and one pruner for a while: every solve succeeds with the right
    result, every prune succeeds, and the root is consistent afterwards."""
    root, snapshotter = root
    first = _solve(root, snapshotter, 0, root.parent / "warm")
    assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    stop = time.monotonic() + 12
    failures: list[str] = []
    counts = {"solves": 0, "prunes": 0, "skipped": 0}
    lock = threading.Lock()

    def solver(n: int) -> None:
        rnd = random.Random(n)
        i = 0
        while time.monotonic() < stop and not failures:
            v = rnd.randrange(6)
            out = root.parent / f"out-{n}-{i}"
            p = _solve(root, snapshotter, v, out)
            err = p.stderr.read().decode()
            code = p.wait(timeout=120)
            if code != 0:
                failures.append(f"solve {v} (exit {code}): {err}")
            elif (out / "out").read_text() != _expected(v):
                failures.append(f"solve {v}: wrong result {(out / 'out').read_text()!r}")
            with lock:
                counts["solves"] += 1
            i += 1

    def pruner() -> None:
        rnd = random.Random(99)
        while time.monotonic() < stop and not failures:
            args = rnd.choice([["--all"], ["--keep-storage", "1MB"], []])
            p = _prune(root, *args)
            if p.returncode != 0:
                failures.append(f"prune {args}: {p.stderr}")
            with lock:
                counts["prunes"] += 1
                counts["skipped"] += sum(int(line.split()[1]) for line in p.stdout.splitlines()
                                         if line.startswith("Skipped"))
            time.sleep(rnd.uniform(0, 0.5))

    threads = [threading.Thread(target=solver, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=pruner))
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert failures == []
    assert counts["solves"] >= 3 and counts["prunes"] >= 2, counts
    assert counts["skipped"] >= 1, counts  # some prune met a running solve
    # afterwards: a clean root that prunes to nothing
    assert containers(root) == [] and mounts_under(root) == [] and session_temps(root) == []
    p = _prune(root, "--all")
    assert p.returncode == 0 and "Skipped" not in p.stdout, p.stdout + p.stderr
    assert sorted(os.listdir(root / "snapshots")) == []
