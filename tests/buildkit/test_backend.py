"""`llb solve --backend buildkit` against a real buildkitd: llb's progress contract (every
vertex exactly one of cached/done/error, by llb's digests and names), a failure as exit 1
with the vertex, command and log tail, --no-cache, tar outputs, and setup errors as exit 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bkhelp import BUILDCTL

LLB = str(Path(sys.executable).parent / "llb")
REPO = Path(__file__).resolve().parents[2]
BB = str(REPO / "examples/busybox/build.py")

PROGRAM = f'''import importlib.util, llb
spec = importlib.util.spec_from_file_location("bb", {BB!r})
bb = importlib.util.module_from_spec(spec); spec.loader.exec_module(bb)

def build():
    base = bb.busybox()
    a = base.run(["sh", "-c", "echo built > /a.txt; echo to-stdout"], name="write a").root()
    return llb.merge([a, llb.scratch().file(llb.mkfile("/b.txt", "b\\n"))])

def fails():
    return bb.busybox().run(["sh", "-c", "echo one; echo two >&2; exit 3"], name="boom").root()
'''


def _llb(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([LLB, *args], capture_output=True, timeout=300,
                          env={**os.environ, **(env or {})}, **kw)


def _remote(daemon, build: Path, *args: str) -> subprocess.CompletedProcess:
    return _llb("solve", str(build), "--backend", "buildkit", "--addr", daemon.addr,
                "--buildctl", str(BUILDCTL), "--local", "busybox=/bin", *args)


@pytest.fixture
def build(tmp_path) -> Path:
    path = tmp_path / "build.py"
    path.write_text(PROGRAM)
    return path


def _events(stderr: bytes) -> list[dict]:
    return [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]


def _terminal(events: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in events:
        if e["event"] in ("cached", "done", "error"):
            assert e["vertex"] not in out, f"two terminal events for {e['name']}"
            out[e["vertex"]] = e["event"]
    return out


def test_progress_is_llbs_every_vertex_once_then_cached(tmp_path, buildkitd, build):
    from llb.cli.loader import load_definition

    definition = load_definition(str(build))
    first = _remote(buildkitd, build, "--progress", "json", "--no-cache")
    assert first.returncode == 0, first.stderr
    events = _events(first.stderr)
    assert set(_terminal(events)) == set(definition.ops)
    names = {e["name"] for e in events}
    assert {"write a", "busybox files", "mkfile /b.txt", "merge (2 inputs)"} <= names
    assert _terminal(events)[next(d for d, m in definition.metadata.items()
                                  if m.progress_name == "write a")] == "done"
    logs = [e["data"] for e in events if e["event"] == "log" and e["name"] == "write a"]
    assert logs == ["to-stdout\n"]
    again = _remote(buildkitd, build, "--progress", "json")
    assert again.returncode == 0, again.stderr
    terminal = _terminal(_events(again.stderr))
    assert set(terminal) == set(definition.ops)
    assert terminal[next(d for d, m in definition.metadata.items()
                         if m.progress_name == "write a")] == "cached"
    no_cache = _remote(buildkitd, build, "--progress", "json", "--no-cache")
    assert "cached" not in {t for d, t in _terminal(_events(no_cache.stderr)).items()
                            if definition.ops[d].kind == "exec"}


def test_plain_progress_view(buildkitd, build):
    p = _remote(buildkitd, build, "--progress", "plain")
    assert p.returncode == 0
    assert "write a" in p.stderr.decode()


def test_a_failed_build_is_exit_1_with_vertex_command_and_log_tail(buildkitd, build):
    p = _remote(buildkitd, build, "--target", "fails", "--progress", "json")
    assert p.returncode == 1
    lines = [line for line in p.stderr.decode().splitlines() if not line.startswith("{")]
    assert lines[0].startswith("error: [")
    assert "] boom: process \"sh -c echo one; echo two >&2; exit 3\" did not complete " \
           "successfully: exit code: 3" in lines[0]
    assert lines[1] == "command: sh -c echo one; echo two >&2; exit 3"
    assert lines[2] == "last lines of output:"
    assert sorted(lines[3:]) == ["  one", "  two"]
    terminal = _terminal(_events(p.stderr))
    assert "error" in terminal.values()


def test_tar_outputs_to_a_file_and_stdout(tmp_path, buildkitd, build):
    dest = tmp_path / "out.tar"
    p = _remote(buildkitd, build, "--output", f"type=tar,dest={dest}", "--progress", "plain")
    assert p.returncode == 0, p.stderr
    with tarfile.open(dest) as t:
        names = set(t.getnames())
        assert {"a.txt", "b.txt", "bin/busybox"} <= names
        assert t.extractfile("a.txt").read() == b"built\n"
    out = _remote(buildkitd, build, "--output", "type=tar,dest=-", "--progress", "plain")
    assert out.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
        assert set(t.getnames()) == names


def test_buildkit_host_is_the_default_address(tmp_path, buildkitd, build):
    p = _llb("solve", str(build), "--backend", "buildkit", "--buildctl", str(BUILDCTL),
             "--local", "busybox=/bin", "--output", f"type=local,dest={tmp_path / 'o'}",
             env={"BUILDKIT_HOST": buildkitd.addr})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o/b.txt").read_text() == "b\n"


@pytest.mark.parametrize("args,env,message", [
    ([], {"BUILDKIT_HOST": ""}, "--backend buildkit needs --addr ADDR or $BUILDKIT_HOST"),
    (["--addr", "unix:///nonexistent/buildkitd.sock", "--buildctl", "/nonexistent/buildctl"],
     {}, "/nonexistent/buildctl: not an executable"),
    (["--addr", "unix:///nonexistent/buildkitd.sock", "--buildctl", str(BUILDCTL)], {},
     "buildkit at unix:///nonexistent/buildkitd.sock:"),
])
def test_setup_errors_are_one_line_and_exit_2(build, args, env, message):
    if not BUILDCTL.exists() and message.startswith("buildkit at"):
        pytest.skip("needs buildctl")
    p = _llb("solve", str(build), "--backend", "buildkit", "--local", "busybox=/bin", *args,
             "--progress", "plain", env=env)
    assert p.returncode == 2
    errors = [line for line in p.stderr.decode().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], p.stderr


def test_missing_local_is_exit_2_before_anything_runs(build):
    p = _llb("solve", str(build), "--backend", "buildkit", "--addr", "unix:///nonexistent",
             "--buildctl", sys.executable)
    assert p.returncode == 2
    assert "no --local mapping for local source 'busybox'" in p.stderr.decode()


def test_local_only_options_are_usage_errors(build):
    p = _llb("solve", str(build), "--addr", "unix:///x")
    assert p.returncode == 2 and "--addr and --buildctl apply to --backend buildkit" in \
        p.stderr.decode()
    p = _llb("solve", str(build), "--backend", "buildkit", "--explain", "--addr", "unix:///x")
    assert p.returncode == 2 and "--explain applies to --backend local" in p.stderr.decode()
