"""Run every benchmark in bench/ (files named bench_*.py), one process each, in name order.

Each benchmark prints its own figures (and ratios against baselines measured in the same
run). `python bench/run.py NAME ...` runs only the benchmarks whose file name contains NAME.

Between two benchmarks it waits SETTLE seconds: each deletes its files when it ends, and on
ext4 without a journal (these machines) every inode freed in the last ~30 s slows each later
file creation nearby (`recently_deleted()` in fs/ext4/ialloc.c), which the next benchmark's
first figures would otherwise pay for.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


SETTLE = 35  # seconds


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.name for a in argv)]
    failed = []
    for i, script in enumerate(scripts):
        if i:
            print(f"(waiting {SETTLE} s for the previous benchmark's deletions to age out)",
                  flush=True)
            time.sleep(SETTLE)
        print(f"==> {script.name}", flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=here.parent)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
