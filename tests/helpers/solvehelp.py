"""Helpers for the `llb solve` CLI tests: run the real `llb` process, parse JSON progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from exechelp import BUSYBOX
from storehelp import overlay_reason

LLB_PATH = str(Path(sys.executable).parent / "llb")


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    def terminal(self) -> dict[str, str]:
        """vertex -> its terminal event (asserting there is exactly one per vertex)."""
        out: dict[str, str] = {}
        for e in self.events:
            if e["event"] in ("cached", "done", "error"):
                assert e["vertex"] not in out, f"two terminal events for {e['name']}"
                out[e["vertex"]] = e["event"]
        return out

    def names(self, event: str) -> list[str]:
        return sorted(e["name"] for e in self.events if e["event"] == event)


class LLB:
    """`llb` on one root with one snapshotter."""

    def __init__(self, root: Path, snapshotter: str):
        self.root = root
        self.snapshotter = snapshotter

    def cmd(self, *args: str) -> list[str]:
        return [LLB_PATH, *args]

    def solve_args(self, build, *args: str, progress: str = "json") -> list[str]:
        return [LLB_PATH, "solve", str(build), "--root", str(self.root), "--snapshotter",
                self.snapshotter, "--progress", progress, *args]

    def solve(self, build, *args: str, progress: str = "json", input: bytes | None = None) -> Run:
        return run(self.solve_args(build, *args, progress=progress), input=input)

    def __call__(self, *args: str) -> Run:
        return run([LLB_PATH, *args, "--root", str(self.root)])


def run(argv: list[str], input: bytes | None = None) -> Run:
    p = subprocess.run(argv, input=input, capture_output=True, timeout=120)
    return Run(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


@pytest.fixture(params=["overlayfs", "native"])
def llb_root(request, tmp_path: Path) -> LLB:
    if request.param == "overlayfs":
        reason = overlay_reason(tmp_path)
        if reason:
            pytest.skip(reason)
    return LLB(tmp_path / "root", request.param)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def busybox_root(d: Path) -> Path:
    """A tiny root for Exec tests: /bin/busybox and /bin/sh."""
    import shutil

    (d / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, d / "bin" / "busybox")
    if not (d / "bin" / "sh").exists():
        os.symlink("busybox", d / "bin" / "sh")
    return d
