"""The `llb` group imports each command's module only when needed, yet lists, suggests and
runs every command as before."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from cli.main import main

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
    code = ("import sys\nfrom cli.main import main\n"
            "try:\n    main(['solve', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print(sorted(m for m in ('cli.dump', 'cli.cache', 'llb.state') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
