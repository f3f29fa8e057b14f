"""Helpers for exec tests: a usable runc (or a skip saying why) and a plain busybox rootfs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")


def runc_problem() -> str | None:
    """Why Exec ops cannot run here, or None when runc works."""
    if os.geteuid() != 0:
        return "runc needs root"
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    if not BUSYBOX.is_file():
        return "busybox-static is not installed (apt-get install busybox-static)"
    try:
        subprocess.run(["runc", "--version"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"runc does not run: {e}"
    return _container_problem()


def _container_problem() -> str | None:
    """Run one container (busybox `true`) the way the executor does; its error, if any."""
    import tempfile

    from llb.executor.runc import Executor, ProcessSpec

    with tempfile.TemporaryDirectory(prefix="llb-runc-probe-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        try:
            result = Executor(Path(tmp) / "state").run(
                rootfs, ProcessSpec(args=["/bin/busybox", "true"]))
        except Exception as e:  # noqa: BLE001 - any failure means: skip, saying why
            return f"runc cannot run a container here: {e}"
        if result.exit_code != 0:
            why = result.runc_error or f"exit code {result.exit_code}"
            return f"runc cannot run a container here: {why}"
    return None


_PROBLEM = runc_problem()
needs_runc = pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal root: /bin/busybox with relative applet symlinks, /etc/passwd and group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", root / "bin" / a)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n")
    return root


REPO = Path(__file__).resolve().parents[2]
BUSYBOX_BUILD = REPO / "examples" / "busybox" / "build.py"
# the head of a build file whose `_bb.busybox()` is the busybox example's base
BUSYBOX_PRELUDE = f'''import importlib.util
import os
import llb

_spec = importlib.util.spec_from_file_location("busybox_base", {str(BUSYBOX_BUILD)!r})
_bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bb)
'''
LOCALS = {"busybox": BUSYBOX.parent}


def load_busybox():
    """examples/busybox/build.py as a module (its busybox() is the tests' base root)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_llb_example_busybox", BUSYBOX_BUILD)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tree_of(root: Path) -> dict[str, tuple]:
    """A tree's exact picture minus times and owners: path -> ("d", mode) | ("f", mode,
    bytes) | ("l", target) | ("p", mode) | ("c"/"b", mode, rdev); hardlinked files share a
    ("f", ...) entry and are reported by `link_groups`."""
    import stat as st_

    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = "/" + os.path.relpath(p, root)
            s = os.lstat(p)
            mode = st_.S_IMODE(s.st_mode)
            if st_.S_ISDIR(s.st_mode):
                out[rel] = ("d", mode)
            elif st_.S_ISLNK(s.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif st_.S_ISREG(s.st_mode):
                out[rel] = ("f", mode, Path(p).read_bytes())
            elif st_.S_ISFIFO(s.st_mode):
                out[rel] = ("p", mode)
            elif st_.S_ISCHR(s.st_mode):
                out[rel] = ("c", mode, s.st_rdev)
            elif st_.S_ISBLK(s.st_mode):
                out[rel] = ("b", mode, s.st_rdev)
            else:
                out[rel] = ("s", mode)
    return out


def link_groups(root: Path) -> set[frozenset[str]]:
    """Sets of paths (2 or more) that are hardlinks of one another."""
    import stat as st_

    by_inode: dict[tuple[int, int], set[str]] = {}
    for dirpath, _dirs, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            s = os.lstat(p)
            if st_.S_ISREG(s.st_mode) and s.st_nlink > 1:
                by_inode.setdefault((s.st_dev, s.st_ino), set()).add(
                    "/" + os.path.relpath(p, root))
    return {frozenset(v) for v in by_inode.values() if len(v) > 1}


def build_root(snapshotter: str, tmp_path: Path, build: str) -> tuple[Path, str]:
    """A root to come (tmp_path/root) beside `build` written as tmp_path/build.py, for one
    snapshotter; the test is skipped where overlayfs does not mount."""
    if snapshotter == "overlayfs":
        from llb.snapshot.mount import overlay_works
        if not overlay_works(tmp_path / "probe"):
            pytest.skip("overlayfs mounts do not work here")
    (tmp_path / "build.py").write_text(build)
    return tmp_path / "root", snapshotter
