"""llb.snapshot.mount.mounts_under reads /proc/self/mountinfo, where a mount point's space,
tab, newline and backslash are octal escapes: the paths come back as they are on disk."""

from __future__ import annotations

import subprocess
from pathlib import Path

from llb.snapshot.mount import mounts_under, unmount


def test_mount_points_with_escaped_characters(tmp_path: Path) -> None:
    plain, spaced = tmp_path / "plain", tmp_path / "a b\\c"
    inner = plain / "in"
    for d in (plain, spaced):
        d.mkdir()
    mounted: list[Path] = []
    try:
        for d in (plain, spaced):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
            mounted.append(d)
        inner.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
        mounted.append(inner)
        assert mounts_under(tmp_path) == [str(inner), str(plain), str(spaced)] or \
            mounts_under(tmp_path) == [str(inner), str(spaced), str(plain)]
        assert mounts_under(spaced) == [str(spaced)]
        assert mounts_under(tmp_path / "a") == []
    finally:
        for d in reversed(mounted):
            unmount(d)
