"""Where exporters write: proving a destination writable before anything is solved (leaving
nothing behind), and writing a file destination so a failed export leaves no half file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from llb.solver.errors import OutputSpecError


def check_dir_dest(dest: str) -> None:
    """Prove dest can be a directory we write into: create what is missing, create and remove
    a probe file, then remove what was created (nothing is left behind either way)."""
    p = Path(dest)
    if p.exists() and not p.is_dir():
        raise OutputSpecError(f"--output dest={dest}: exists and is not a directory", path=dest)
    missing: list[Path] = []
    probe = p
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({probe} is not a directory)",
                              path=dest)
    created: list[Path] = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        _probe_file(p / f".llb-probe-{os.getpid()}")
    except OSError as e:
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None
    finally:
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass


def check_file_dest(dest: str) -> None:
    """Prove dest can be written as a file: open an existing one for writing (not truncated),
    or create and remove it."""
    p = Path(dest)
    if p.is_dir():
        raise OutputSpecError(f"--output dest={dest}: is a directory", path=dest)
    parent = p.parent
    if not parent.is_dir():
        raise OutputSpecError(f"--output dest={dest}: directory {parent} does not exist", path=dest)
    try:
        if p.exists():
            os.close(os.open(p, os.O_WRONLY | os.O_CLOEXEC))
        else:
            _probe_file(p)
    except OSError as e:
        raise OutputSpecError(f"--output dest={dest}: cannot write there ({e.strerror})",
                              path=dest) from None


def write_file_dest(dest: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run write(f) on a temporary file beside dest, then rename it over dest (a failure
    leaves dest as it was)."""
    tmp = dest.with_name(f".{dest.name}.llb-tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _probe_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.unlink(path)
