"""Run every benchmark in bench/ (files named bench_*.py), one process each, in name order.

Each benchmark prints its own figures (and ratios against baselines measured in the same
run). `python bench/run.py NAME ...` runs only the benchmarks whose file name contains NAME.
bench_solver runs first. What the benchmarks leave goes into one trash directory, deleted
after the last of them (bench/placement.py: a deletion slows the file creations of the next
minutes), or before the next one when less than 40 GiB are free; the trash an earlier,
killed run left (its process gone) is deleted then too. A trash that cannot be deleted is
said so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from placement import TRASH_ENV, spread

FIRST = "bench_solver.py"
ROOM = 40 << 30  # bytes free below which the trash is emptied before the next benchmark


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    # bench_solver (issue 13's table, and the most disk) first, the others in name order
    scripts = sorted(here.glob("bench_*.py"), key=lambda s: (s.name != FIRST, s.name))
    if argv:
        scripts = [s for s in scripts if any(a in s.name for a in argv)]
    failed = []
    base = Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench"))
    trash = tempfile.mkdtemp(prefix=f"trash-{os.getpid()}-", dir=spread(base))
    env = {**os.environ, TRASH_ENV: trash}
    try:
        for script in scripts:
            free = shutil.disk_usage(trash).free
            if free < ROOM:
                print(f"==> {free / 2**30:.1f} GiB free: removing what the benchmarks before "
                      f"left now (the next one's file creation pays for it)", flush=True)
                for stale in _stale_trash(base):
                    print(f"==> also an earlier run's trash: {stale}", flush=True)
                    _remove(stale)
                _empty(Path(trash))
            print(f"==> {script.name}", flush=True)
            rc = subprocess.call([sys.executable, str(script)], cwd=here.parent, env=env)
            if rc != 0:
                failed.append(script.name)
    finally:
        print("==> removing what the benchmarks left", flush=True)
        _remove(Path(trash))
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def _empty(trash: Path) -> None:
    """Delete what is in trash, keeping the directory."""
    for entry in trash.iterdir():
        _remove(entry)


def _remove(path: Path) -> None:
    """Delete the tree at path; if some of it stays, say so (with the first error) on stderr
    rather than leave tens of GB behind unsaid."""
    errors: list[str] = []
    shutil.rmtree(path, onerror=lambda _f, p, e: errors.append(f"{p}: {e[1]}"))
    if errors:
        print(f"==> could not remove all of {path} ({len(errors)} errors; the first: "
              f"{errors[0]})", file=sys.stderr, flush=True)


def _stale_trash(base: Path) -> list[Path]:
    """Trash directories of earlier runs whose process is gone (a run that was killed
    before its final deletion); one named without a process id predates them all."""
    stale = []
    for d in base.glob("trash-*"):
        pid = d.name.split("-")[1]
        if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
            stale.append(d)
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
