"""Run every benchmark in bench/ (files named bench_*.py), one process each, in name order.

Each benchmark prints its own figures (and ratios against baselines measured in the same
run). `python bench/run.py NAME ...` runs only the benchmarks whose file name contains NAME.
What the benchmarks leave goes into one trash directory, deleted after the last of them
(bench/placement.py: a deletion slows the file creations of the next minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from placement import TRASH_ENV, spread


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.name for a in argv)]
    failed = []
    base = Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench"))
    trash = tempfile.mkdtemp(prefix="trash-", dir=spread(base))
    env = {**os.environ, TRASH_ENV: trash}
    try:
        for script in scripts:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
