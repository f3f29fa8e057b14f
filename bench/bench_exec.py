"""Exec benchmark: per-exec overhead of llb above a bare `runc run` of the same bundle.

Measured in the same run, on the busybox base (examples/busybox, /bin/busybox as the local):
  bare runc       `runc run` of one bundle (the config llb writes, rootfs a plain copy of
                  the base), one after another around each chain and WORKERS at a time
                  around each parallel solve (N/2 runs just before, N/2 just after: the
                  same machine load as the llb phase it is compared with)
  chain           200 `true` execs, each on the previous one's root, solved at once
  parallel        200 `true` execs on the same base (different env: distinct vertices),
                  their diffs merged, solved with WORKERS workers
for each snapshotter that works here. Overhead = llb's wall time per exec minus bare
runc's (sequential for the chain, parallel for the branches). Target: < 25 ms per exec.
(On native, each parallel branch's rootfs is a full copy of the base, which dominates
there; a chain step takes its parent's private tree instead, see snapshot/native.py.)
`python bench/bench_exec.py --execs N` shrinks the run; `--breakdown` also prints where the
chain's time per exec goes (store prepare/mount/unmount/commit, runc, the rest of the
executor, everything else).

Where the run lives: a fresh directory under /var/tmp/llb-bench-exec, which carries ext4's
"top directory" flag so that each run's directory is placed in a block group of its own
(as ext4 spreads top-level directories). On ext4 without a journal, inodes freed in the
last minutes are skipped one by one by every file creation in their block group: the
~100k inodes an earlier run deletes at its end made the next run's native copies 10x
slower (150 ms instead of 13 ms per busybox tree). Nothing big is deleted before or
between the measured phases; this run's tree is removed at its very end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from placement import discard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

EXECS = 200
WORKERS = 4
TARGET_MS = 25.0
LOCALS = {"busybox": Path("/bin")}


_BENCH_PARENT = Path("/var/tmp/llb-bench-exec")


def _run_dir() -> Path:
    """A fresh directory for this run, away from earlier runs' freed inodes (see
    bench/placement.py)."""
    from placement import fresh_dir

    return fresh_dir(_BENCH_PARENT)


def _busybox():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "busybox_base", HERE.parent / "examples" / "busybox" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.busybox()


class BareRunc:
    """Bare `runc run`s of the bundle llb's executor would write for `true` (rootfs a plain
    copy of the base), measured in short batches right before and after each llb phase so
    that both sides see the same machine load (another job's load drifts over a run)."""

    def __init__(self, tmp: Path, rootfs: Path) -> None:
        import json

        from llb.executor.runc import Executor, ProcessSpec

        self.ex = Executor(tmp / "bare-state")
        config = self.ex._config("bench", rootfs, ProcessSpec(args=["true"]), [])
        self._config = lambda cid: json.dumps({**config, "linux": {
            **config["linux"], "cgroupsPath": f"/llb/{cid}"}})
        self._i = 0
        self.run()  # warm up

    def run(self, _: object = None) -> None:
        self._i += 1
        cid = f"llb-bench-{os.getpid()}-{self._i}-{time.monotonic_ns()}"
        b = self.ex._bundles / cid  # where llb writes bundles (a tmpfs when there is one)
        b.mkdir()
        (b / "config.json").write_text(self._config(cid))
        p = subprocess.run([self.ex.runc, "--root", str(self.ex._runc_root), "run",
                            "--bundle", str(b), cid], stdin=subprocess.DEVNULL,
                           capture_output=True)
        shutil.rmtree(b)
        if p.returncode != 0:
            raise SystemExit(f"bare runc run failed: {p.stderr.decode()}")

    def seq(self, n: int) -> float:
        """Seconds per run, n runs one after another."""
        t = time.perf_counter()
        for _ in range(n):
            self.run()
        return (time.perf_counter() - t) / n

    def par(self, n: int, workers: int) -> float:
        """Wall seconds per run, n runs `workers` at a time."""
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(self.run, range(n)))
        return (time.perf_counter() - t) / n


def _around(bare, measure) -> tuple[float, float]:
    """(measure(), the mean of bare() just before and just after it)."""
    before = bare()
    value = measure()
    return value, (before + bare()) / 2


class Breakdown:
    """Wall time spent in the store's and the executor's steps (wrapped while measuring)."""

    def __init__(self) -> None:
        import collections
        import contextlib

        import llb.snapshot.store as store_mod
        import llb.executor.runc as executor_mod
        import llb.executor.stubs as stubs_mod

        self.t: dict[str, float] = collections.defaultdict(float)
        self._undo = []
        self._wrap(store_mod.Store, "prepare", "store prepare")
        self._wrap(store_mod.Mutable, "commit", "store commit")
        self._wrap(executor_mod.Executor, "run", "executor")
        self._wrap(executor_mod.Executor, "_run_runc", "runc run")
        self._wrap(stubs_mod.Stubs, "record", "stubs record")
        self._wrap(stubs_mod.Stubs, "clean", "stubs clean")
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
        t["executor (besides runc, stubs)"] = t.pop("executor", 0.0) - sum(
            t.get(k, 0.0) for k in ("runc run", "stubs record", "stubs clean"))
        t["everything else"] = total - sum(t.values())
        return ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in t.items())


def llb_runs(tmp: Path, snapshotter: str, n: int, workers: int, bare: BareRunc,
             breakdown: bool = False) -> tuple[float, float, float, float, str]:
    """(wall seconds per exec for a chain of n, bare sequential seconds per run around it,
    wall seconds per exec for n parallel branches, bare parallel seconds per run around
    it, breakdown text). Each bare figure is the mean of n/2 runs before and n/2 after."""
    import llb
    from llb.solver.solve import Solver

    base = _busybox()
    chain = base
    for _ in range(n):
        chain = chain.run(["true"]).root()
    branches = llb.merge([llb.diff(base, base.run(["true"], env={"BRANCH": str(i)}).root())
                          for i in range(n)])
    half = max(1, n // 2)
    with Solver(tmp / f"root-{snapshotter}", snapshotter, workers=workers) as solver:
        solver.solve(base.to_definition(), LOCALS)
        d = chain.to_definition()
        bd = Breakdown() if breakdown else None

        def solve_chain() -> float:
            t = time.perf_counter()
            solver.solve(d, LOCALS)
            return time.perf_counter() - t

        try:
            total, seq = _around(lambda: bare.seq(half), solve_chain)
        finally:
            if bd is not None:
                bd.close()
        text = bd.report(total, n) if bd is not None else ""
        d2 = branches.to_definition()

        def solve_branches() -> float:
            t = time.perf_counter()
            solver.solve(d2, LOCALS)
            return (time.perf_counter() - t) / n

        per_branch, par = _around(lambda: bare.par(half, workers), solve_branches)
    return total / n, seq, per_branch, par, text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--execs", type=int, default=EXECS)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None or not Path("/bin/busybox").exists():
        print("skipped: needs root, runc and busybox-static")
        return 0
    from llb.snapshot.mount import overlay_works

    tmp = _run_dir()
    try:
        kinds = ["native"] + (["overlayfs"] if overlay_works(tmp / "probe") else [])
        # the bare baseline's rootfs: the solved busybox base, exported as a plain copy
        from llb.solver.exporters.local import export_local
        from llb.solver.solve import Solver

        with Solver(tmp / "root-export", "native") as s:
            res = s.solve(_busybox().to_definition(), LOCALS)
            export_local(s.store, res.ref, tmp / "rootfs")
        bare = BareRunc(tmp, tmp / "rootfs")
        verdicts = []
        for kind in kinds:
            chain, seq, branch, par, text = llb_runs(tmp, kind, args.execs, args.workers,
                                                     bare, args.breakdown)
            print(f"{kind:9s} bare runc run around it: {seq * 1000:.1f} ms sequential, "
                  f"{par * 1000:.1f} ms per run with {args.workers} at a time")
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
        discard(tmp)
        try:
            _BENCH_PARENT.rmdir()
        except OSError:
            pass  # another run is using it


if __name__ == "__main__":
    sys.exit(main())
