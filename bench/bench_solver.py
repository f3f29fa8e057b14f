"""Solver benchmarks: the shapes of issue 4, end to end through the `llb` process, each cold
(fresh root) and fully cached, on both snapshotters, exported with type=local; wall time and
peak memory (max RSS of the `llb` process; shapes taking under QUICK seconds are measured
best of 3), printed beside BuildKit v0.11.6's figures from
the issue with the 5x target.

`python bench/bench_solver.py [SHAPE ...] [--snapshotter overlayfs|native]` runs a subset;
BENCH_DIR (default /tmp/llb-bench) keeps the local contexts and serialised graphs; each
benchmark run works in a new directory under BENCH_DIR/runs, removed at its end.

Every measured run gets a fresh root and export directory, all inside one directory per
benchmark run that ext4 places in a block group away from inodes freed earlier
(bench/placement.py; warmed up by an unmeasured solve), and what a run leaves is moved aside
(into that directory's trash) and deleted only when the whole benchmark is done: on ext4 without a
journal (these machines) the inode allocator skips, one by one, every recently freed inode
of a block group (`recently_deleted()` in fs/ext4/ialloc.c), so deleting a tree just before
a run would make that run's file creations up to 20x slower. The cost of llb's own
deletions still counts. Before each run the page cache is synced, so that a run does not pay for the
write-back of the ones before it (merge-big writes 256 MiB per export)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from placement import fresh_dir

HERE = Path(__file__).resolve().parent
LLB = [sys.executable, "-c", "from llb.cli.main import run; run()"]
_bin = Path(sys.executable).parent / "llb"
if _bin.exists():
    LLB = [str(_bin)]

# BuildKit v0.11.6 (runc worker, 2 cores), wall seconds (cold, cached); None = failed/absent
BUILDKIT = {
    "merge-files 10": {},
    "merge-files 100": {"overlayfs": (12.7, 15.1), "native": (20.0, 13.3)},
    "merge-files 500": {"overlayfs": (54.0, 68.9), "native": (48.1, 59.9)},
    "merge-big 4x64MiB": {"overlayfs": (5.8, 4.5), "native": (5.6, 4.4)},
    "chain 100": {"overlayfs": (4.3, 0.5), "native": (8.2, 0.5)},
    "chain 1000": {"overlayfs": (None, None), "native": (104.7, 18.7)},
    "merge-del 1000": {"overlayfs": (3.0, 1.5), "native": (1.6, 1.3)},
    "cached 10k-vertex graph": {},
}
TARGET = 5.0
QUICK = 8.0  # seconds (cold + cached) under which a shape is measured best of 3
CACHED_10K_LIMIT = 1.5

_HEADER = "import llb\n\n"

BUILDS = {
    "merge-files": '''
def build():
    parts = []
    for i in range({n}):
        acts = llb.mkdir(f"/d{{i}}")
        for j in range(100):
            acts = acts.mkfile(f"/d{{i}}/f{{j}}", f"file {{j}} of {{i}}\\n".encode())
        parts.append(llb.scratch().file(acts))
    return llb.merge(parts)
''',
    "merge-big": '''
def build():
    return llb.merge([llb.local(f"big{{i}}") for i in range(4)])
''',
    "chain": '''
def build():
    s = llb.scratch()
    for i in range({n}):
        s = s.file(llb.mkfile(f"/f{{i}}", f"{{i}}\\n".encode()))
    return s
''',
    "merge-del": '''
def build():
    acts = llb.mkdir("/data")
    for i in range({n}):
        acts = acts.mkfile(f"/data/f{{i}}", b"x" * 100)
    full = llb.scratch().file(acts)
    rm = None
    for i in range(0, {n}, 2):
        rm = llb.rm(f"/data/f{{i}}") if rm is None else rm.rm(f"/data/f{{i}}")
    halved = full.file(rm)
    third = llb.scratch().file(llb.mkdir("/data").mkfile("/data/keep", b"k").mkfile("/data/f0", b"t"))
    return llb.merge([third, halved])
''',
    "wide-deep": '''
def build():
    # 100 chains of 100 FileOps, merged in a two-level tree (10,012 vertices); each step
    # rewrites its chain's file, so the result holds 100 files and the export is small
    chains = []
    for w in range(100):
        s = llb.scratch()
        for d in range(100):
            s = s.file(llb.mkfile(f"/c{{w}}", f"step {{d}}\\n".encode()))
        chains.append(s)
    groups = [llb.merge(chains[i:i + 10]) for i in range(0, 100, 10)]
    return llb.merge(groups)
''',
}

SHAPES = [
    ("merge-files 10", "merge-files", 10),
    ("merge-files 100", "merge-files", 100),
    ("merge-files 500", "merge-files", 500),
    ("merge-big 4x64MiB", "merge-big", 4),
    ("chain 100", "chain", 100),
    ("chain 1000", "chain", 1000),
    ("merge-del 1000", "merge-del", 1000),
    ("cached 10k-vertex graph", "wide-deep", 10012),
]


def _overlay_ok(work: Path) -> bool:
    sys.path.insert(0, str(HERE.parent))
    try:
        from llb.snapshot.mount import overlay_works

        return os.geteuid() == 0 and overlay_works(work / "probe")
    except Exception:  # noqa: BLE001
        return False


def _run(argv: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS MiB, exit code and stderr tail of one `llb` process.

    Peak RSS comes from GNU time (a child's max RSS counts from its fork, so measuring from
    this process would include our own memory)."""
    fd, stats = tempfile.mkstemp(prefix="llb-bench-")
    os.close(fd)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%M", *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV)
    wall = time.perf_counter() - t0
    try:
        peak_kib = int(Path(stats).read_text().split()[-1])
    except (ValueError, IndexError):
        peak_kib = 0
    os.unlink(stats)
    return wall, peak_kib / 1024, p.returncode, p.stderr.decode(errors="replace")[-800:]


# The `llb` processes run as an installed llb does: with bytecode (pip compiles it at install;
# a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on each run,
# ~40 ms). llb's own bytecode is written beside its sources (__pycache__, ignored by git).
_ENV = dict(os.environ)


def _bytecode_env(work: Path) -> None:
    _ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    _ENV.pop("PYTHONPYCACHEPREFIX", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(HERE.parent / p) for p in
                    ("llb", "snapshot", "solver", "cli"))], stdout=subprocess.DEVNULL, env=_ENV)
    # one unmeasured solve warms this run's directory (and the page cache)
    d = _Trash.fresh(work / "warmup")
    d.mkdir(parents=True)
    (d / "build.py").write_text(_HEADER + BUILDS["chain"].format(n=2))
    for _ in range(2):
        subprocess.run(LLB + ["solve", str(d / "build.py"), "--root", str(d / "root"),
                              "--progress", "plain", "--output", f"type=local,dest={d / 'out'}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
    _Trash.put(d)


def _prepare(work: Path, kind: str, n: int) -> tuple[Path, list[str]]:
    """The build file (serialised once to a definition, like a CI would) and --local args."""
    d = work / f"{kind}-{n}"
    d.mkdir(parents=True, exist_ok=True)
    build = d / "build.py"
    build.write_text(_HEADER + BUILDS[kind].format(n=n))
    args: list[str] = []
    if kind == "merge-big":
        for i in range(4):
            ctx = d / f"big{i}"
            f = ctx / f"big{i}.bin"
            if not f.exists() or f.stat().st_size != 64 << 20:
                ctx.mkdir(exist_ok=True)
                with open(f, "wb") as fh:
                    for _ in range(64):
                        fh.write(os.urandom(1 << 20))
                old = time.time() - 60  # an existing context, not one written this second
                os.utime(f, (old, old))
            args += ["--local", f"big{i}={ctx}"]
    graph = d / "graph.llb"
    if not graph.exists():
        subprocess.run(LLB + ["marshal", str(build), "-o", str(graph)], check=True)
    return graph, args


def main(argv: list[str]) -> int:
    kinds = ["overlayfs", "native"]
    if "--snapshotter" in argv:
        i = argv.index("--snapshotter")
        kinds = [argv[i + 1]]
        argv = argv[:i] + argv[i + 2:]
    shapes = [s for s in SHAPES if not argv or any(a in s[0] for a in argv)]
    # contexts and graphs are kept in BENCH_DIR; roots, exports and the rest of this run go
    # to a new directory that ext4 places away from the inodes earlier runs (or other
    # benchmarks) freed (bench/placement.py), warmed up first, deleted at the end
    work = Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench"))
    run = fresh_dir(work / "runs")
    _Trash.init(run)
    if "overlayfs" in kinds and not _overlay_ok(run):
        print("overlayfs: cannot mount here, skipped")
        kinds.remove("overlayfs")
    _bytecode_env(run)
    print(f"file-system baseline: creating 1,000 small files takes {_create_cost(run):.2f} s here "
          "(cold shapes and local exports are bound by it)")
    print(f"{'shape':<26}{'snapshotter':<11}{'cold s':>8}{'cached s':>9}{'peak MiB':>9}"
          f"  {'BuildKit cold/cached':>21}  {'speedup':>13}  target")
    failed = False
    try:
        for label, kind, n in shapes:
            graph, args = _prepare(work, kind, n)
            for snap in kinds:
                failed |= not _measure(run, label, kind, n, snap, graph, args)
    finally:
        _Trash.empty()
        shutil.rmtree(run, ignore_errors=True)
    return 1 if failed else 0


def _measure(work: Path, label: str, kind: str, n: int, snap: str, graph: Path,
             args: list[str]) -> bool:
    """Print one shape's row: cold (fresh root) and cached (same root) runs, each exporting
    into a fresh directory; short shapes best of 3."""
    def solve(root: Path) -> tuple[float, float, int, str]:
        out = _Trash.fresh(work / f"out-{kind}-{n}-{snap}")
        os.sync()  # earlier runs' writes reach the disk now, not during this run
        result = _run(LLB + ["solve", str(graph), "--root", str(root), "--snapshotter", snap,
                             "--progress", "plain", "--output", f"type=local,dest={out}",
                             *args])
        _Trash.put(out)
        return result

    root = _Trash.fresh(work / f"root-{kind}-{n}-{snap}")
    cold, mem1, rc1, err1 = solve(root)
    cached, mem2, rc2, err2 = solve(root)
    # short shapes: best of 3 (a fresh root for each cold run), to see past noise
    for _ in range(2 if not (rc1 or rc2) and cold + cached < QUICK else 0):
        _Trash.put(root)
        c, m = solve(root)[:2]
        cold, mem1 = min(cold, c), max(mem1, m)
        c, m = solve(root)[:2]
        cached, mem2 = min(cached, c), max(mem2, m)
    if os.environ.get("BENCH_KEEP") != "1":
        _Trash.put(root)
    if rc1 or rc2:
        print(f"{label:<26}{snap:<11} FAILED (exit {rc1 or rc2}): "
              f"{(err1 if rc1 else err2).strip().splitlines()[-1:]}", flush=True)
        return False
    bk = BUILDKIT.get(label, {}).get(snap)
    print(_row(label, snap, cold, cached, max(mem1, mem2), bk), flush=True)
    return True


def _row(label, snap, cold, cached, mem, bk) -> str:
    line = f"{label:<26}{snap:<11}{cold:8.2f}{cached:9.2f}{mem:9.0f}"
    if label == "cached 10k-vertex graph":
        ok = cached < CACHED_10K_LIMIT
        return line + f"  {'(target < 1.5 s cached)':>21}  {'':>13}  {'met' if ok else 'MISSED'}"
    if not bk:
        return line + f"  {'-':>21}  {'':>13}"
    bc, bw = bk
    if bc is None:
        return line + f"  {'fails / -':>21}  {'(BK fails)':>13}  {'met'}"
    sc, sw = bc / cold, bw / cached
    ok = sc >= TARGET and sw >= TARGET
    return (line + f"  {f'{bc:.1f} / {bw:.1f}':>21}  {f'{sc:4.1f}x / {sw:4.1f}x':>13}  "
            f"{'met' if ok else 'MISSED'}")


def _create_cost(work: Path) -> float:
    """Seconds to create and write 1,000 small files in `work` (a baseline for this run)."""
    d = _Trash.fresh(work / "baseline")
    d.mkdir()
    t0 = time.perf_counter()
    for i in range(1000):
        fd = os.open(d / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 100)
        os.close(fd)
    took = time.perf_counter() - t0
    _Trash.put(d)
    return took


class _Trash:
    """Deferred deletion (see the module docstring): put() moves a path into work/trash
    (a rename frees no inode), empty() deletes it all once the measurements are done."""

    dir: Path | None = None
    _n = 0

    @classmethod
    def init(cls, work: Path) -> None:
        cls.dir = work / "trash"
        cls.empty()  # an interrupted run's
        cls.dir.mkdir()

    @classmethod
    def fresh(cls, path: Path) -> Path:
        """path, moved to the trash first if something is there."""
        cls.put(path)
        return path

    @classmethod
    def put(cls, path: Path) -> None:
        if not os.path.lexists(path):
            return
        _unmount_under(path)
        cls._n += 1
        os.rename(path, cls.dir / f"{cls._n}-{path.name}")

    @classmethod
    def empty(cls) -> None:
        if cls.dir is not None and cls.dir.exists():
            _unmount_under(cls.dir)
            shutil.rmtree(cls.dir, ignore_errors=True)


def _unmount_under(path: Path) -> None:
    """Lazily unmount anything left mounted under path (a root a failed run left behind)."""
    subprocess.run(["sh", "-c", f"grep -o ' {path}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"],
                   check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
