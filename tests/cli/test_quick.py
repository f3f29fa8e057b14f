"""The `llb` executable reads a plain `llb solve` without click (cli/quick.py): whatever it
reads, it reads as click does, and it leaves to click every command line it does not read
the same way (help, typos, bad values, the buildkit backend, shell completion)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from llb.cli.quick import solve_params
from llb.cli.solve import solve

# command lines the quick path reads: its parameters must be click's (every one: an option
# added to the click command fails here until the quick path passes it on)
READ = [
    ["b.py"],
    ["-"],
    ["b.py", "--progress", "plain", "--output", "type=local,dest=out"],
    ["--progress=json", "-o", "type=tar,dest=-", "b.py"],
    ["b.py", "-otype=local,dest=x", "--no-cache", "--explain"],
    ["b.py", "--local", "ctx=.", "--local=other=/tmp/a=b", "--oci-layout", "img=/l"],
    ["b.py", "--insecure-registry", "h:5000", "--insecure-registry=k"],
    ["b.py", "--root", "/nonexistent/root", "--snapshotter", "native", "--workers", "64"],
    ["b.py", "--workers=1", "--target", "other", "--output="],
    ["b.py", "--root", "", "--workers", "007"],
]
# command lines click must read: it says something (help, an error) or reads them its way
LEFT = [
    [], ["--help"], ["b.py", "-h"], ["a.py", "b.py"], ["b.py", "--bogus"], ["b.py", "-x"],
    ["b.py", "--progress", "fancy"], ["b.py", "--snapshotter", "zfs"],
    ["b.py", "--workers", "0"], ["b.py", "--workers", "65"], ["b.py", "--workers", " 4"],
    ["b.py", "--workers", "x"], ["b.py", "--local", "ctx"], ["b.py", "--local", "=p"],
    ["b.py", "--oci-layout", "n="], ["b.py", "--output"], ["b.py", "--output", "--progress"],
    ["b.py", "--target", "a", "--target", "b"], ["b.py", "--no-cache=1"],
    ["b.py", "--backend", "buildkit"], ["b.py", "--addr", "tcp://x"], ["--", "b.py"],
    ["b.py", "--buildctl", "/bin/true"],
]


def _click_params(args: list[str]) -> dict:
    ctx = solve.make_context("solve", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize("args", READ)
def test_what_it_reads_it_reads_as_click(args: list[str]) -> None:
    params = solve_params(args)
    assert params is not None
    assert {**params, "backend": "local", "addr": None, "buildctl": None} == _click_params(args)


@pytest.mark.parametrize("args", LEFT)
def test_what_click_reads_otherwise_is_left_to_click(args: list[str]) -> None:
    assert solve_params(args) is None


def test_a_root_that_is_a_file_is_left_to_click(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    args = ["b.py", "--root", str(tmp_path / "f")]
    assert solve_params(args) is None
    with pytest.raises(click.BadParameter, match="is a file"):
        _click_params(args)
    assert solve_params(["b.py", "--root", str(tmp_path)]) is not None


def test_shell_completion_is_left_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LLB_COMPLETE", "bash_complete")
    assert solve_params(["b.py"]) is None


def _executable(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = ("import sys, os\nfrom llb.cli.main import run\n"
            "sys.argv = ['llb', *sys.argv[1:]]\n"
            "exit = os._exit\n"
            "def _exit(code):\n"
            "    sys.stdout.write('\\nclick loaded: %s' % ('click' in sys.modules))\n"
            "    sys.stdout.flush()\n"
            "    exit(code)\n"
            "os._exit = _exit\nrun()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "LLB_ROOT": str(cwd / "root")})


def test_the_executable_solves_without_click_and_fails_as_click_did(tmp_path: Path) -> None:
    (tmp_path / "build.py").write_text(
        "import llb\n\ndef build():\n    return llb.scratch().file(llb.mkfile('/a', 'x'))\n")
    ok = _executable(["solve", "build.py", "--progress", "plain",
                      "--output", f"type=local,dest={tmp_path / 'out'}"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "a").read_text() == "x"
    assert ok.stdout.endswith("click loaded: False")
    # a failed build file: one line, exit 2, as before
    (tmp_path / "bad.py").write_text("def build():\n    raise ValueError('boom')\n")
    bad = _executable(["solve", "bad.py"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == "error: bad.py:2: build() failed: ValueError: boom\n"
    # a bad option value: click's usage error
    usage = _executable(["solve", "build.py", "--workers", "0"], tmp_path)
    assert usage.returncode == 2 and "Invalid value for '--workers'" in usage.stderr
    assert usage.stdout.endswith("click loaded: True")
