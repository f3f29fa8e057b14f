"""The `llb` group imports each command's module only when needed, yet lists, suggests and
runs every command as before."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from llb.cli.main import main

_ALL = ["du", "dump", "marshal", "prune", "solve"]


def test_help_lists_every_command() -> None:
    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0
    listed = out.output.split("Commands:")[1].split()
    assert [w for w in listed if w in _ALL] == _ALL


def test_typo_suggests_the_lazy_command() -> None:
    out = CliRunner().invoke(main, ["sovle"])
    assert out.exit_code == 2
    assert "No such command 'sovle'" in out.output
    assert "Did you mean 'solve'?" in out.output


def test_solve_help_loads_no_other_command_module() -> None:
    code = ("import sys\nfrom llb.cli.main import main\n"
            "try:\n    main(['solve', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print(sorted(m for m in ('llb.cli.dump', 'llb.cli.cache', 'llb.state') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    """The `llb` executable's entry point (cli.main:run) in a fresh interpreter."""
    code = "import sys\nfrom llb.cli.main import run\nsys.argv = ['llb', *sys.argv[1:]]\nrun()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, **kw)


def test_run_exits_with_the_commands_status_and_flushed_output(tmp_path) -> None:
    ok = _run(["--version"], text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "llb, version 0.1.0")
    bad = _run(["solve", str(tmp_path / "missing.py")], text=True)
    assert bad.returncode == 2
    assert bad.stderr == f"error: {tmp_path / 'missing.py'}: no such build file or definition\n"
    usage = _run(["solve"], text=True)
    assert usage.returncode == 2 and "Missing argument 'BUILD'" in usage.stderr


def test_run_into_a_closed_pipe_is_quiet() -> None:
    # `llb dump ... | head -1` where the reader is gone: click turns EPIPE into exit 1, and
    # the final flush into the closed pipe is not a traceback either
    r, w = os.pipe()
    os.close(r)
    try:
        code = ("import sys\nfrom llb.cli.main import run\n"
                "sys.argv = ['llb', 'dump', 'examples/merge/build.py']\nrun()\n")
        p = subprocess.run([sys.executable, "-c", code], stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    assert p.returncode == 1
    assert p.stderr == b""
