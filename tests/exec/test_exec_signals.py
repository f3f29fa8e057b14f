"""Stopping `llb solve` while its exec runs (issue 10, item 2): SIGINT, SIGTERM and SIGHUP
cancel cleanly (container killed, prepared snapshots discarded, one line, exit 128+signal);
after SIGKILL the next solve or `llb prune` kills and deletes the dead process's container
before reusing or removing what it used. Each time: no container, no process of it and no
mount is left, and the next solve is correct. Both snapshotters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from exechelp import BUSYBOX_PRELUDE, LOCALS, needs_runc
from leftovers import containers, mounts_under, processes_with, session_temps

pytestmark = needs_runc

LLB = str(Path(sys.executable).parent / "llb")

BUILD = f'''
{BUSYBOX_PRELUDE}

def build():
    tag, pause = os.environ["TAG"], os.environ["PAUSE"]
    cmd = (f"echo {{tag}} >> /cache/seen; echo {{tag}} > /result; echo ready-{{tag}}; "
           f"sleep {{pause}}")
    return _bb.busybox().run(["sh", "-c", cmd],
                             mounts=[llb.cache_mount("/cache", id="signals")]).root()
'''


@pytest.fixture(scope="module", params=["overlayfs", "native"])
def root(request, tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp(f"signals-{request.param}")
    if request.param == "overlayfs":
        from llb.snapshot.mount import overlay_works
        if not overlay_works(tmp / "probe"):
            pytest.skip("overlayfs mounts do not work here")
    (tmp / "build.py").write_text(BUILD)
    return tmp / "root", request.param


def _argv(root: Path, snapshotter: str, out: Path | None = None) -> list[str]:
    argv = [LLB, "solve", str(root.parent / "build.py"), "--root", str(root),
            "--snapshotter", snapshotter, "--progress", "json",
            *[f"--local={k}={v}" for k, v in LOCALS.items()]]
    return argv + (["--output", f"type=local,dest={out}"] if out else [])


def _start_sleeping(root: Path, snapshotter: str, token: str,
                    ignore_hup: bool = False) -> tuple[subprocess.Popen, Path]:
    """An `llb solve` whose exec has started and sleeps `token` seconds."""
    log = root.parent / f"stderr-{token}"
    env = dict(os.environ, TAG=token, PAUSE=token)

    def nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with open(log, "wb") as err:
        # a new session, as a shell's job would be: the signal goes to llb alone
        proc = subprocess.Popen(_argv(root, snapshotter), stdout=subprocess.DEVNULL,
                                stderr=err, env=env, start_new_session=True,
                                preexec_fn=nohup if ignore_hup else None)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if f"ready-{token}" in log.read_text(errors="replace") and processes_with(f"sleep {token}"):
            return proc, log
        if proc.poll() is not None:
            pytest.fail(f"llb solve ended early ({proc.returncode}): {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the exec never started")


def _assert_nothing_left(root: Path, token: str) -> None:
    deadline = time.monotonic() + 10  # a killed container's processes take a moment to go
    while processes_with(f"sleep {token}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(f"sleep {token}") == []
    assert containers(root) == []
    assert mounts_under(root) == []
    assert session_temps(root) == []


def _next_solve_is_correct(root: Path, snapshotter: str, token: str) -> None:
    out = root.parent / f"out-{token}"
    env = dict(os.environ, TAG=f"after-{token}", PAUSE="0")
    p = subprocess.run(_argv(root, snapshotter, out), capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert (out / "result").read_text() == f"after-{token}\n"
    terminal = {json.loads(line)["event"] for line in p.stderr.decode().splitlines()
                if line.startswith("{") and json.loads(line)["event"] in ("done", "error")}
    assert terminal == {"done"}
    _assert_nothing_left(root, token)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_cancels_cleanly(root, sig):
    root, snapshotter = root
    token = str(3000 + uuid.uuid4().int % 5000)
    proc, log = _start_sleeping(root, snapshotter, token)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig
    lines = log.read_text().splitlines()
    assert lines[-1] == f"error: interrupted by {signal.Signals(sig).name}"
    assert not any(line.startswith("Traceback") for line in lines)
    _assert_nothing_left(root, token)
    _next_solve_is_correct(root, snapshotter, token)


@pytest.mark.parametrize("next_command", ["solve", "prune", "du"])
def test_sigkill_leaves_a_container_the_next_command_reaps(root, next_command):
    root, snapshotter = root
    token = str(3000 + uuid.uuid4().int % 5000)
    proc, _ = _start_sleeping(root, snapshotter, token)
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(0.3)
    assert processes_with(f"sleep {token}"), "the container outlives a SIGKILLed llb"
    assert containers(root) != []
    if next_command == "solve":
        _next_solve_is_correct(root, snapshotter, token)
        return
    p = subprocess.run([LLB, next_command, "--root", str(root)], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    _assert_nothing_left(root, token)
    _next_solve_is_correct(root, snapshotter, token)


def test_a_sighup_nohup_ignores_stays_ignored(root):
    root, snapshotter = root
    token = str(3000 + uuid.uuid4().int % 5000)
    proc, log = _start_sleeping(root, snapshotter, token, ignore_hup=True)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert proc.poll() is None and processes_with(f"sleep {token}")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    _assert_nothing_left(root, token)
