"""Run every benchmark in bench/ (files named bench_*.py), one process each, in name order.

Each benchmark prints its own figures (and ratios against baselines measured in the same
run). `python bench/run.py NAME ...` runs only the benchmarks whose file name contains NAME.
bench_solver runs first. What the benchmarks leave goes into one trash directory, deleted
after the last of them (bench/placement.py: a deletion slows the file creations of the next
minutes), or before the next one when less than 40 GiB are free.
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
    trash = tempfile.mkdtemp(prefix="trash-", dir=spread(base))
    env = {**os.environ, TRASH_ENV: trash}
    try:
        for script in scripts:
            free = shutil.disk_usage(trash).free
            if free < ROOM:
                print(f"==> {free / 2**30:.1f} GiB free: removing what the benchmarks before "
                      f"left now (the next one's file creation pays for it)", flush=True)
                _empty(Path(trash))
            print(f"==> {script.name}", flush=True)
            rc = subprocess.call([sys.executable, str(script)], cwd=here.parent, env=env)
            if rc != 0:
                failed.append(script.name)
    finally:
        print("==> removing what the benchmarks left", flush=True)
        shutil.rmtree(trash, ignore_errors=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def _empty(trash: Path) -> None:
    """Delete what is in trash, keeping the directory."""
    for entry in trash.iterdir():
        shutil.rmtree(entry, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
