"""Exec benchmark: per-exec overhead of llb above a bare `runc run` of the same bundle.

Measured in the same run, on the busybox base (examples/busybox, /bin/busybox as the local):
  bare runc       `runc run` of one bundle (the config llb writes, rootfs a plain copy of
                  the base), N times one after another, and N at a time on WORKERS threads
  chain           200 `true` execs, each on the previous one's root, solved at once
  parallel        200 `true` execs on the same base (different env: distinct vertices),
                  their diffs merged, solved with WORKERS workers
for each snapshotter that works here. Overhead = llb's wall time per exec minus bare
runc's (sequential for the chain, parallel for the branches). Target: < 25 ms per exec.
(On native, preparing an exec's rootfs is a full copy of its parent: that copy dominates.)
`python bench/bench_exec.py --execs N` shrinks the run; `--breakdown` also prints where the
chain's time per exec goes (store prepare/mount/unmount/commit, runc, the rest of the
executor, everything else).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

EXECS = 200
WORKERS = 4
TARGET_MS = 25.0
LOCALS = {"busybox": Path("/bin")}


def _busybox():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "busybox_base", HERE.parent / "examples" / "busybox" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.busybox()


def bare_runc(tmp: Path, rootfs: Path, n: int, workers: int) -> tuple[float, float]:
    """(seconds per sequential run, wall seconds per run with `workers` at a time) of a
    bare `runc run` of the bundle llb's executor would write for `true`."""
    from solver.executor import Executor, ProcessSpec

    ex = Executor(tmp / "bare-state")
    bundle = ex._bundles  # where llb's executor writes bundles (a tmpfs when there is one)
    config = ex._config("bench", rootfs, ProcessSpec(args=["true"]), [])
    import json

    def run(i: int) -> None:
        cid = f"llb-bench-{os.getpid()}-{i}"
        b = bundle / cid
        b.mkdir()
        (b / "config.json").write_text(json.dumps({**config, "linux": {
            **config["linux"], "cgroupsPath": f"/llb/{cid}"}}))
        p = subprocess.run([ex.runc, "--root", str(ex._runc_root), "run", "--bundle",
                            str(b), cid], stdin=subprocess.DEVNULL, capture_output=True)
        shutil.rmtree(b)
        if p.returncode != 0:
            raise SystemExit(f"bare runc run failed: {p.stderr.decode()}")

    run(-1)  # warm up
    t = time.perf_counter()
    for i in range(n):
        run(i)
    seq = (time.perf_counter() - t) / n
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(n, 2 * n)))
    par = (time.perf_counter() - t) / n
    return seq, par


class Breakdown:
    """Wall time spent in the store's and the executor's steps (wrapped while measuring)."""

    def __init__(self) -> None:
        import collections
        import contextlib

        import snapshot.store as store_mod
        import solver.executor as executor_mod

        self.t: dict[str, float] = collections.defaultdict(float)
        self._undo = []
        self._wrap(store_mod.Store, "prepare", "store prepare")
        self._wrap(store_mod.Mutable, "commit", "store commit")
        self._wrap(executor_mod.Executor, "run", "executor")
        self._wrap(executor_mod.Executor, "_run_runc", "runc run")
        orig = store_mod.Mutable.mount
        t = self.t

        @contextlib.contextmanager
        def mount(m):
            start = time.perf_counter()
            cm = orig(m)
            path = cm.__enter__()
            t["store mount"] += time.perf_counter() - start
            try:
                yield path
            finally:
                start = time.perf_counter()
                cm.__exit__(None, None, None)
                t["store unmount"] += time.perf_counter() - start
        store_mod.Mutable.mount = mount
        self._undo.append((store_mod.Mutable, "mount", orig))

    def _wrap(self, cls, name: str, label: str) -> None:
        orig = getattr(cls, name)
        t = self.t

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                t[label] += time.perf_counter() - start
        setattr(cls, name, wrapper)
        self._undo.append((cls, name, orig))

    def close(self) -> None:
        for cls, name, orig in reversed(self._undo):
            setattr(cls, name, orig)

    def report(self, total: float, n: int) -> str:
        t = dict(self.t)
        t["executor (besides runc)"] = t.pop("executor", 0.0) - t.get("runc run", 0.0)
        t["everything else"] = total - sum(t.values())
        return ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in t.items())


def llb_runs(tmp: Path, snapshotter: str, n: int, workers: int,
             breakdown: bool = False) -> tuple[float, float, str]:
    """(wall seconds per exec for a chain of n, for n parallel branches, breakdown text)."""
    import llb
    from solver.solve import Solver

    base = _busybox()
    chain = base
    for _ in range(n):
        chain = chain.run(["true"]).root()
    branches = llb.merge([llb.diff(base, base.run(["true"], env={"BRANCH": str(i)}).root())
                          for i in range(n)])
    with Solver(tmp / f"root-{snapshotter}", snapshotter, workers=workers) as solver:
        solver.solve(base.to_definition(), LOCALS)
        d = chain.to_definition()
        bd = Breakdown() if breakdown else None
        t = time.perf_counter()
        solver.solve(d, LOCALS)
        total = time.perf_counter() - t
        per_chain = total / n
        text = ""
        if bd is not None:
            bd.close()
            text = bd.report(total, n)
        d = branches.to_definition()
        t = time.perf_counter()
        solver.solve(d, LOCALS)
        per_branch = (time.perf_counter() - t) / n
    return per_chain, per_branch, text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=EXECS)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None or not Path("/bin/busybox").exists():
        print("skipped: needs root, runc and busybox-static")
        return 0
    from snapshot.mount import overlay_works

    tmp = Path(tempfile.mkdtemp(prefix="llb-bench-exec-", dir="/var/tmp"))
    try:
        kinds = ["native"] + (["overlayfs"] if overlay_works(tmp / "probe") else [])
        # the bare baseline's rootfs: the solved busybox base, exported as a plain copy
        from solver.exporters.local import export_local
        from solver.solve import Solver

        with Solver(tmp / "root-export", "native") as s:
            res = s.solve(_busybox().to_definition(), LOCALS)
            export_local(s.store, res.ref, tmp / "rootfs")
        seq, par = bare_runc(tmp, tmp / "rootfs", args.execs, args.workers)
        print(f"bare runc run: {seq * 1000:.1f} ms sequential, {par * 1000:.1f} ms per run "
              f"with {args.workers} at a time ({args.execs} runs each)")
        verdicts = []
        for kind in kinds:
            chain, branch, text = llb_runs(tmp, kind, args.execs, args.workers,
                                           args.breakdown)
            oc, ob = (chain - seq) * 1000, (branch - par) * 1000
            worst = max(oc, ob)
            verdicts.append(f"{kind} {worst:.1f} ms "
                            f"({'OK' if worst < TARGET_MS else 'ABOVE TARGET'})")
            print(f"{kind:9s} chain of {args.execs}: {chain * 1000:.1f} ms/exec "
                  f"(overhead {oc:+.1f} ms, ratio {chain / seq:.2f}x bare)")
            if text:
                print(f"{kind:9s} chain, ms per exec: {text}")
            print(f"{kind:9s} {args.execs} parallel: {branch * 1000:.1f} ms/exec "
                  f"(overhead {ob:+.1f} ms, ratio {branch / par:.2f}x bare)")
        print(f"worst overhead per exec (target < {TARGET_MS:.0f} ms): " + ", ".join(verdicts))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
