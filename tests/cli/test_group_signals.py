"""A signal that stops `llb` while click itself runs (parsing the group's options, or the
command's end) is reported like one that stops the command: `error: interrupted by SIG...`
and 128 + its number, never click's "Aborted!" and status 1."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from llb.cli.group import LLBGroup, main
from llb.cli.signals import SIGHUP, SIGTERM, Interrupted


def _check(result: click.testing.Result, name: str, code: int) -> None:
    assert result.exit_code == code, result.output
    assert "Aborted!" not in result.output
    assert result.output.strip().splitlines()[-1] == f"error: interrupted by {name}"


def test_a_signal_while_the_group_parses_its_options(monkeypatch, tmp_path: Path):
    def parse_args(self, ctx, args):
        raise Interrupted(SIGTERM)

    monkeypatch.setattr(LLBGroup, "parse_args", parse_args)
    _check(CliRunner().invoke(main, ["du", "--root", str(tmp_path / "root")]), "SIGTERM", 143)


def test_a_signal_as_the_command_ends(monkeypatch, tmp_path: Path):
    exit_ = click.Context.exit
    codes = []

    def exit(self, code=0):  # the signal comes as the command exits with 0
        codes.append(code)
        if len(codes) == 1 and code == 0:
            raise Interrupted(SIGHUP)
        exit_(self, code)

    monkeypatch.setattr(click.Context, "exit", exit)
    result = CliRunner().invoke(main, ["du", "--root", str(tmp_path / "root")])
    _check(result, "SIGHUP", 129)
    assert codes == [0, 129]


@pytest.mark.parametrize("args", [["du", "--root", "ROOT"], ["--version"], ["--help"]])
def test_no_signal_leaves_the_status_as_it_was(args, tmp_path: Path):
    args = [str(tmp_path / "root") if a == "ROOT" else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_a_signal_once_the_command_is_over_changes_nothing():
    # run() settles the signals once the status is decided: a signal in the exit's flushing
    # is only noted, never a traceback; before that, the first one interrupts
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from llb.cli import signals\n"
            "signals.install()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "except signals.Interrupted as e:\n"
            "    print('interrupted', e.exit_code)\n"
            "signals._received.clear()\n"
            "signals.settle()\n"
            "os.kill(os.getpid(), signal.SIGHUP)\n"
            "print('noted', signals._received)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["interrupted 143", f"noted [{int(SIGHUP)}]"]
