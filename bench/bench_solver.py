"""Solver benchmarks: llb side by side with real BuildKit v0.11.6 in the same run.

Each shape (bench/shapes.py) is solved cold (empty cache) and fully cached, on both
snapshotters, exported with type=local into a fresh directory:
  llb        `llb solve build.py --output type=local,dest=...` (the build file evaluated and
             solved as a user does; a fresh --root for the cold run)
  BuildKit   `buildctl build --output type=local,dest=... < def.pb`, def.pb being the Go
             client's definition of the same graph (llbjson, marshalled once beforehand and
             not timed); a fresh daemon (root, snapshotter) for each round, started and
             warmed with an unrelated one-op build before its cold run
  floor      where creating the files is what a run must do anyway, the exported tree
             created by a C loop (bench/floor.py; contents held in memory): cached, once (the
             export); cold, twice in a row (the build's files in the cache, then the export:
             an export that shared the cache's inodes would let a user's edit of the export
             change the cache, and ext4 has no reflinks). `cp -a` of the tree is shown too
Every figure is the median of ROUNDS rounds, the order of llb / BuildKit / floor rotating
each round, so that drifting load on the machine hits every party alike. Ratios are llb's
wall time over BuildKit's (0.20x = 5x faster) and over the floor's.

Target (issue 13): llb at least 5x faster than BuildKit, cold and cached; where the floor is
above a fifth of BuildKit's time (5x is physically out of reach), within 1.2x of the floor.
The exported trees of llb and BuildKit are compared (paths, types, modes, contents, link
targets) once per shape and snapshotter.

Placement (bench/placement.py): all runs of one benchmark live in one directory that ext4
places away from the inodes earlier runs freed; each daemon, root and export gets a fresh
directory; nothing is deleted until the whole benchmark is done, or under `make bench` until
the last benchmark is (what a run leaves is moved into a trash directory: a rename frees no
inode), because on ext4 without a journal every file creation skips, one by one, its block
group's recently freed inodes. For the same reason nothing is timed while a deletion made
before the run still slows file creation: the baseline (1,000 small files created) is taken
again every 15 s until it is healthy or stops falling. Before each timed run the page cache
is synced, so no run pays for the write-back of the ones before it.

`python bench/bench_solver.py [SHAPE ...] [--snapshotter overlayfs|native] [--rounds N]`
runs a subset; BENCH_DIR (default /tmp/llb-bench) keeps contexts and definitions;
BENCH_VERBOSE=1 prints every round's figures."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import buildkit
import floor
from placement import discard, fresh_dir, spread
from shapes import SHAPES, Shape, build_file, contexts, graph_json

HERE = Path(__file__).resolve().parent
LLB = [sys.executable, "-c", "from llb.cli.main import run; run()"]
_bin = Path(sys.executable).parent / "llb"
if _bin.exists():
    LLB = [str(_bin)]

ROUNDS = 3
TARGET = 5.0  # llb at least this many times faster than BuildKit
FLOOR_SLACK = 1.2  # ... or within this factor of the floor, where the floor forbids 5x
CACHED_10K_LIMIT = 1.5
BUILDKIT_TIMEOUT = 900

VERBOSE = os.environ.get("BENCH_VERBOSE") == "1"

# The `llb` processes run as an installed llb does: with bytecode (pip compiles it at
# install; a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on
# each run, ~40 ms). llb's own bytecode is written beside its sources (__pycache__).
_ENV = dict(os.environ)
_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
_ENV.pop("PYTHONPYCACHEPREFIX", None)


# ------------------------------------------------------------------ timed runs


def _timed(argv: list[str], timeout: float | None = None
           ) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS MiB, exit code and stderr tail of
    one process (peak RSS and CPU from GNU time: a child's max RSS counts from its fork, so
    ours would be included otherwise)."""
    fd, stats = tempfile.mkstemp(prefix="llb-bench-")
    os.close(fd)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["/usr/bin/time", "-o", stats, "-f", "%M %U %S", *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV,
                           timeout=timeout)
        rc, err = p.returncode, p.stderr.decode(errors="replace")[-800:]
    except subprocess.TimeoutExpired:
        rc, err = -1, f"timed out after {timeout} s"
    wall = time.perf_counter() - t0
    try:
        kib, user, system = Path(stats).read_text().split()[-3:]
        peak, cpu = int(kib) / 1024, float(user) + float(system)
    except ValueError:
        peak = cpu = 0.0
    os.unlink(stats)
    return wall, cpu, peak, rc, err


class Run:
    """One party's cold and cached figures for one round (None: it failed)."""

    def __init__(self) -> None:
        self.cold: float | None = None
        self.cached: float | None = None
        self.cold_cpu: float | None = None  # CPU seconds (user + system) of the same runs
        self.cached_cpu: float | None = None
        self.peak = 0.0
        self.error = ""
        self.out: Path | None = None  # the cached run's export


def llb_round(work: Path, shape: Shape, snap: str, build: Path, locals_: dict[str, Path]) -> Run:
    """llb cold (fresh root) then cached, each exporting into a fresh directory."""
    run = Run()
    root = fresh(work / "llb-root")
    for phase in ("cold", "cached"):
        out = fresh(work / f"llb-out-{phase}")
        argv = LLB + ["solve", str(build), "--root", str(root), "--snapshotter", snap,
                      "--progress", "plain", "--output", f"type=local,dest={out}"]
        for name, path in locals_.items():
            argv += ["--local", f"{name}={path}"]
        os.sync()  # earlier runs' writes reach the disk now, not during this run
        wall, cpu, peak, rc, err = _timed(argv)
        run.peak = max(run.peak, peak)
        if rc:
            run.error = f"exit {rc}: " + " ".join(err.strip().splitlines()[-1:])
            return run
        setattr(run, phase, wall)
        setattr(run, f"{phase}_cpu", cpu)
        run.out = out
    return run


def buildkit_round(work: Path, snap: str, definition: Path, warmup: Path,
                   locals_: dict[str, Path]) -> Run:
    """A fresh daemon, warmed with an unrelated one-op build; then cold and cached builds,
    each exporting into a fresh directory; the daemon is stopped (its root kept until the
    end)."""
    run = Run()
    daemon = buildkit.Daemon(fresh(work / "bk"), snap)
    try:
        _, _, rc, err = daemon.build(warmup, fresh(work / "bk-warm"), {})
        if rc:
            run.error = "warm-up failed: " + " ".join(err.strip().splitlines()[-1:])
            return run
        for phase in ("cold", "cached"):
            out = fresh(work / f"bk-out-{phase}")
            os.sync()
            wall, cpu, rc, err = daemon.build(definition, out, locals_, timeout=BUILDKIT_TIMEOUT)
            if rc:
                run.error = " ".join(err.strip().splitlines()[-1:])[-200:]
                return run
            setattr(run, phase, wall)
            setattr(run, f"{phase}_cpu", cpu)
            run.out = out
    finally:
        daemon.stop()
    return run


class Floor:
    """The floors of one round: the C loop's creation of the tree once (`cached`: what a
    cached solve must write) and twice in a row (`cold`: cache, then export), and `cp -a`."""

    def __init__(self, cached: float, cold: float, cp: float) -> None:
        self.cached, self.cold, self.cp = cached, cold, cp


def floor_round(work: Path, mktree: Path, pack: Path, tree: Path) -> Floor:
    os.sync()
    create = floor.create(mktree, pack, fresh(work / "floor-create"))
    os.sync()
    cache = floor.create(mktree, pack, fresh(work / "floor-cache"))
    again = floor.create(mktree, pack, fresh(work / "floor-export"))
    os.sync()
    cp = floor.cp_a(tree, fresh(work / "floor-cp"))
    return Floor(create, cache + again, cp)


# ------------------------------------------------------------------ one row


class Row:
    """Medians over the rounds of one shape on one snapshotter, and the verdict."""

    def __init__(self, shape: Shape, snap: str) -> None:
        self.shape, self.snap = shape, snap
        self.llb: list[Run] = []
        self.bk: list[Run] = []
        self.floors: list[Floor] = []
        self.same_tree: str | None = None  # None: not compared; "" same; else the difference

    @staticmethod
    def _median(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return statistics.median(got) if got and len(got) == len(values) else None

    def llb_fig(self, phase: str) -> float | None:
        return self._median([getattr(r, phase) for r in self.llb])

    def bk_fig(self, phase: str) -> float | None:
        return self._median([getattr(r, phase) for r in self.bk]) if self.bk else None

    def floor_fig(self, which: str) -> float | None:
        return statistics.median(getattr(f, which) for f in self.floors) if self.floors else None

    def verdict(self, phase: str) -> str:
        """"5x" (met against BuildKit), "floor" (met against the floor), "MISSED", or "-"."""
        ours, bk, fl = self.llb_fig(phase), self.bk_fig(phase), self.floor_fig(phase)
        if ours is None:
            return "MISSED"
        if bk is None:
            return "-"
        if ours * TARGET <= bk:
            return "5x"
        if fl is not None and fl * TARGET > bk and ours <= fl * FLOOR_SLACK:
            return "floor"
        return "MISSED"


def _pair(a: float | None, b: float | None, fmt: str) -> str:
    """"a / b" with each figure in `fmt` ("s": seconds, "x": a ratio), "-" where missing."""
    def one(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if fmt == "s" else f"{v:.2f}x"
    return f"{one(a)} / {one(b)}"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ratio(a: float | None, b: float | None) -> str:
    r = _div(a, b)
    return f"{r:.2f}x" if r is not None else "-"


# (title, width) of each column but the last; cells are right-aligned but the first two
COLUMNS = [("shape", 24), ("snapshotter", 12), ("llb cold / cached", 18),
           ("BuildKit", 16), ("llb/BuildKit", 16), ("floor cold / cached", 24),
           ("llb/floor", 18), ("peak MiB", 10)]
HEAD = "".join(f"{t:<{w}}" if i < 2 else f"{t:>{w}}" for i, (t, w) in enumerate(COLUMNS)) + \
    "  target"


def format_row(row: Row) -> str:
    """One line of the table (the figures are medians over the rounds)."""
    lc, lw = row.llb_fig("cold"), row.llb_fig("cached")
    peak = max((r.peak for r in row.llb), default=0)
    cells = [row.shape.label, row.snap, _pair(lc, lw, "s")]
    if lc is None or lw is None:
        err = next((r.error for r in row.llb if r.error), "")
        return _line(cells) + f"  llb FAILED ({err})"
    bc, bw = row.bk_fig("cold"), row.bk_fig("cached")
    fc, fw = row.floor_fig("cold"), row.floor_fig("cached")
    if not row.shape.buildkit:
        cells += ["", "", "", "", f"{peak:.0f}"]
        ok = lw < CACHED_10K_LIMIT
        cpu = _pair(row.llb_fig("cold_cpu"), row.llb_fig("cached_cpu"), "s")
        return (_line(cells) + f"  < {CACHED_10K_LIMIT} s cached: {'met' if ok else 'MISSED'}"
                f"\n{'':<36}CPU s (user+system): llb {cpu}")
    if not row.bk:
        cells += ["(not run)", ""]
    elif bc is None or bw is None:
        err = next((r.error for r in row.bk if r.error), "")
        cells += ["fails", ""]
    else:
        cells += [_pair(bc, bw, "s"), _pair(_div(lc, bc), _div(lw, bw), "x")]
    cells += [_pair(fc, fw, "s"), _pair(_div(lc, fc), _div(lw, fw), "x"), f"{peak:.0f}"]
    if not row.bk or bc is None or bw is None:
        verdict = "-"
    else:
        v = (row.verdict("cold"), row.verdict("cached"))
        verdict = ("met" if "MISSED" not in v else "MISSED") + f" ({v[0]} / {v[1]})"
    line = _line(cells) + f"  {verdict}"
    if row.bk and (bc is None or bw is None):
        line += f"\n{'':<36}BuildKit fails: {err}"
    lcc, lwc = row.llb_fig("cold_cpu"), row.llb_fig("cached_cpu")
    bcc, bwc = row.bk_fig("cold_cpu"), row.bk_fig("cached_cpu")
    fp = row.floor_fig("cp")
    if fp is not None:
        line += f"\n{'':<36}cp -a of the exported tree: {fp:.2f} s"
    line += f"\n{'':<36}CPU s (user+system): llb {_pair(lcc, lwc, 's')}"
    if bcc is not None and bwc is not None:
        line += (f", BuildKit (daemon + buildctl) {_pair(bcc, bwc, 's')}, "
                 f"llb/BuildKit {_pair(_div(lcc, bcc), _div(lwc, bwc), 'x')}")
    return line


def _line(cells: list[str]) -> str:
    return "".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}"
                   for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS)))


# ------------------------------------------------------------------ main


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_solver.py", description=__doc__.split("\n\n")[0],
                                 epilog="BENCH_DIR (default /tmp/llb-bench) keeps contexts and "
                                        "definitions; BENCH_VERBOSE=1 prints every round.")
    ap.add_argument("shapes", nargs="*", metavar="SHAPE",
                    help="run only the shapes whose label is or contains one of these "
                         f"({', '.join(s.label for s in SHAPES)})")
    ap.add_argument("--snapshotter", choices=["overlayfs", "native"], action="append",
                    help="only this snapshotter (repeatable; default: both)")
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help=f"rounds per row, medians taken (default {ROUNDS})")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    kinds = args.snapshotter or ["overlayfs", "native"]
    rounds = args.rounds
    labels = {s.label for s in SHAPES}  # an exact label picks that shape only (chain 100, not 1000)
    shapes = [s for s in SHAPES if not args.shapes
              or any(a == s.label or (a not in labels and a in s.label) for a in args.shapes)]
    if not shapes:
        ap.error(f"no shape matches {' '.join(args.shapes)}")
    work = Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench"))
    # roots, daemons and exports of this run: each a new directory placed like a top-level one
    run = spread(fresh_dir(work / "runs"))
    _Trash.init(run)
    rows: list[Row] = []
    used: dict[str, int] = {}  # bytes a row of each shape took (nothing is freed till the end)
    stopped = False  # a row could not run: the disk is short, or the harness failed
    try:
        if "overlayfs" in kinds and not _overlay_ok(run):
            print("overlayfs: cannot mount here, skipped")
            kinds.remove("overlayfs")
        why_not = buildkit.available()
        if why_not:
            print(f"BuildKit: not compared ({why_not})")
        _warm_up(run)
        mktree = floor.compile_mktree(run)
        base, waited = _settled_create_cost(run)
        print(f"file-system baseline: creating 1,000 small files takes {base:.3f} s here{waited}"
              f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {rounds} "
              f"rounds per row, medians; ratios are llb / the other (0.20x = 5x faster)",
              flush=True)
        print(HEAD, flush=True)
        defs = work / "definitions"
        defs.mkdir(parents=True, exist_ok=True)
        warmup = None if why_not else buildkit.definition(graph_json("chain", 1), defs / "warmup.pb")
        for shape in shapes:
            if stopped:
                break
            d = work / f"{shape.kind}-{shape.n}"
            d.mkdir(parents=True, exist_ok=True)
            build = d / "build.py"
            build.write_text(build_file(shape.kind, shape.n))
            locals_ = contexts(shape.kind, shape.n, work / "contexts")
            definition = None
            if shape.buildkit and not why_not:
                definition = buildkit.definition(graph_json(shape.kind, shape.n),
                                                 defs / f"{shape.kind}-{shape.n}.pb")
            for snap in kinds:
                short = _short_of_space(run, locals_, used.get(shape.label, 0), rounds)
                if short:
                    print(f"{shape.label} {snap}: not run: {short}", flush=True)
                    stopped = True
                    break
                free = shutil.disk_usage(run).free
                try:
                    row = measure(run, shape, snap, build, locals_, definition, warmup, mktree,
                                  rounds)
                except OSError as e:  # the harness's own writes (floor, trash): say which row
                    print(f"{shape.label} {snap}: stopped: {e}", flush=True)
                    stopped = True
                    break
                used[shape.label] = max(used.get(shape.label, 0),
                                        free - shutil.disk_usage(run).free)
                rows.append(row)
                print(format_row(row), flush=True)
                if row.same_tree:
                    print(f"  !! llb and BuildKit exported different trees: {row.same_tree}")
                if VERBOSE:
                    _print_rounds(row)
        _summary(rows)
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")
    finally:
        buildkit.unmount_under(run)
        discard(run)  # trash and all: deleted now, or after the last benchmark of `make bench`
    failed = stopped or any(r.llb_fig("cold") is None or r.llb_fig("cached") is None
                            or r.same_tree for r in rows)
    return 1 if failed else 0


def measure(work: Path, shape: Shape, snap: str, build: Path, locals_: dict[str, Path],
            definition: Path | None, warmup: Path | None, mktree: Path, rounds: int) -> Row:
    """All rounds of one row, the order of the parties rotating each round."""
    row = Row(shape, snap)
    pack: Path | None = None
    tree: Path | None = None
    bk_dead = False

    def run_llb() -> None:
        nonlocal pack, tree
        r = llb_round(work, shape, snap, build, locals_)
        row.llb.append(r)
        if r.out is not None and pack is None and shape.buildkit:
            tree = r.out
            pack = work / f"pack-{shape.kind}-{shape.n}"
            floor.pack(tree, pack)

    def run_bk() -> None:
        nonlocal bk_dead
        if definition is None or warmup is None or bk_dead:
            return
        r = buildkit_round(work, snap, definition, warmup, locals_)
        row.bk.append(r)
        bk_dead = r.cold is None or r.cached is None  # a shape it cannot do: once is enough

    def run_floor() -> None:
        if pack is not None and tree is not None:
            row.floors.append(floor_round(work, mktree, pack, tree))

    parties: list[Callable[[], None]] = [run_llb, run_bk, run_floor]
    for r in range(rounds):
        k = r % len(parties)
        for party in parties[k:] + parties[:k]:
            party()
        if r == 0 and row.bk and row.bk[0].out is not None and tree is not None:
            row.same_tree = _compare_trees(tree, row.bk[0].out)
    if len(row.floors) < len(row.llb) and pack is not None:
        run_floor()  # the first round ran the floor before llb had exported anything
    return row


def _print_rounds(row: Row) -> None:
    def fig(runs: list[Run]) -> str:
        return ", ".join(_pair(r.cold, r.cached, "s") for r in runs) or "-"

    print(f"    rounds: llb {fig(row.llb)}; BuildKit {fig(row.bk)}; floor "
          + (", ".join(f"{f.cold:.2f}/{f.cached:.2f}/{f.cp:.2f}" for f in row.floors) or "-")
          + " (cold / cached / cp -a)")


def _summary(rows: list[Row]) -> None:
    """The issue's table: llb/BuildKit cold / cached per shape and snapshotter."""
    by_shape: dict[str, dict[str, Row]] = {}
    for r in rows:
        if r.shape.buildkit:
            by_shape.setdefault(r.shape.label, {})[r.snap] = r
    if not by_shape:
        return
    snaps = [s for s in ("overlayfs", "native") if any(s in v for v in by_shape.values())]
    _table(f"llb/BuildKit wall time, cold / cached (target <= {1 / TARGET:.2f}x; where the "
           f"floor forbids that, llb / the C loop's creation of the files: cold, in the cache "
           f"and the export; cached, the export; target <= {FLOOR_SLACK}x)", by_shape, snaps,
           _wall_cell)
    _table("llb/BuildKit CPU seconds (user+system; BuildKit: daemon + buildctl), cold / cached",
           by_shape, snaps, _cpu_cell)


def _table(title: str, by_shape: dict[str, dict[str, Row]], snaps: list[str],
           cell: Callable[[Row], str]) -> None:
    """One markdown table: a row per shape, a column per snapshotter, `cell` for each."""
    print()
    print(title)
    print("| shape | " + " | ".join(snaps) + " |")
    print("|---|" + "---|" * len(snaps))
    for label, per in by_shape.items():
        print(f"| {label} | " + " | ".join(cell(per[s]) if s in per else "-" for s in snaps)
              + " |")


def _wall_cell(r: Row) -> str:
    lc, lw, bc, bw = r.llb_fig("cold"), r.llb_fig("cached"), r.bk_fig("cold"), r.bk_fig("cached")
    if lc is None or lw is None:
        return "llb fails"
    if bc is None or bw is None:
        return f"BuildKit fails ({lc:.2f} / {lw:.2f} s)"
    cell = _pair(lc / bc, lw / bw, "x")
    fc, fw = r.floor_fig("cold"), r.floor_fig("cached")
    if fc is not None and fw is not None and (fc * TARGET > bc or fw * TARGET > bw):
        cell += f" (floor {_pair(lc / fc, lw / fw, 'x')})"  # the floor forbids 5x
    return cell + (" MISSED" if "MISSED" in (r.verdict("cold"), r.verdict("cached")) else "")


def _cpu_cell(r: Row) -> str:
    lc, lw = r.llb_fig("cold_cpu"), r.llb_fig("cached_cpu")
    bc, bw = r.bk_fig("cold_cpu"), r.bk_fig("cached_cpu")
    return _pair(_div(lc, bc), _div(lw, bw), "x") if bc and bw else "-"


# ------------------------------------------------------------------ trees


def _compare_trees(a: Path, b: Path) -> str:
    """"" if the two trees hold the same paths, types, modes, contents and link targets,
    else the first difference."""
    def listing(root: Path) -> dict[str, tuple]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        extra = hashlib.file_digest(f, "sha256").hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    extra = os.readlink(p)
                else:
                    extra = ""
                out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                 extra)
        return out

    la, lb = listing(a), listing(b)
    for path in sorted(la.keys() | lb.keys()):
        if la.get(path) != lb.get(path):
            return f"{path}: llb {la.get(path)} vs BuildKit {lb.get(path)}"
    return ""


# ------------------------------------------------------------------ setup


MIN_FREE = 2 << 30  # bytes a row must leave free on the run's disk, besides its own needs


def _short_of_space(work: Path, locals_: dict[str, Path], used: int, rounds: int) -> str:
    """Why the next row would run out of disk, or "": nothing is deleted before the end, so
    a row needs what the same shape's last row took (or, for its first row, about ten copies
    of its local contexts a round: llb's and BuildKit's caches and exports and the floor's
    trees) plus MIN_FREE. Saying so beats an ENOSPC half an hour into the run."""
    need = used or rounds * 10 * sum(f.stat().st_size for p in locals_.values()
                                     for f in p.rglob("*") if f.is_file())
    free = shutil.disk_usage(work).free
    if free >= need + MIN_FREE:
        return ""
    return (f"{free / 2**30:.1f} GiB free in {work}, and a row of this shape needs about "
            f"{(need + MIN_FREE) / 2**30:.1f} GiB; free some space and run it again")


def _overlay_ok(work: Path) -> bool:
    sys.path.insert(0, str(HERE.parent))
    try:
        from llb.snapshot.mount import overlay_works

        return os.geteuid() == 0 and overlay_works(work / "probe")
    except Exception:  # noqa: BLE001
        return False


def _warm_up(work: Path) -> None:
    """Compile llb's bytecode, then one unmeasured solve to warm this run's directory and the
    page cache."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(HERE.parent / p) for p in
                    ("llb", "snapshot", "solver", "cli"))], stdout=subprocess.DEVNULL, env=_ENV)
    d = fresh(work / "warmup")
    d.mkdir(parents=True)
    (d / "build.py").write_text(build_file("chain", 2))
    for _ in range(2):
        subprocess.run(LLB + ["solve", str(d / "build.py"), "--root", str(d / "root"),
                              "--progress", "plain", "--output", f"type=local,dest={d / 'out'}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)


HEALTHY_CREATE = 0.15  # s per 1,000 files: above this the disk is still paying for a deletion
SETTLE_PAUSE, SETTLE_MAX = 15.0, 600.0  # s between baselines; s at most spent waiting


def _settled_create_cost(work: Path) -> tuple[float, str]:
    """The baseline once it stops falling: after a deletion (another benchmark's, or this
    one's last run) file creation is several times slower for minutes (bench/placement.py),
    and rows timed meanwhile say more about the disk than about llb. Returns the baseline and
    what the wait was, for the report."""
    costs = [_create_cost(work)]
    t0 = time.monotonic()
    while costs[-1] > HEALTHY_CREATE and time.monotonic() - t0 < SETTLE_MAX:
        if len(costs) == 1:
            print(f"file-system baseline: {costs[0]:.3f} s per 1,000 files (a recent deletion?);"
                  f" waiting for it to settle, up to {SETTLE_MAX / 60:.0f} min", flush=True)
        time.sleep(SETTLE_PAUSE)
        costs.append(_create_cost(work))
        if len(costs) >= 3 and min(costs[-2:]) > 0.9 * min(costs[:-2]):
            break  # no longer falling: this is the disk as it is today
    if len(costs) == 1:
        return costs[0], ""
    return costs[-1], (f" (after {time.monotonic() - t0:.0f} s of waiting: "
                       + ", ".join(f"{c:.3f}" for c in costs) + ")")


def _create_cost(work: Path) -> float:
    """Seconds to create and write 1,000 small files in `work` (a baseline for this run)."""
    d = fresh(work / "baseline")
    d.mkdir()
    t0 = time.perf_counter()
    for i in range(1000):
        fd = os.open(d / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 100)
        os.close(fd)
    return time.perf_counter() - t0


def fresh(path: Path) -> Path:
    """A path where nothing is (what was there moved to the trash first)."""
    _Trash.put(path)
    return path


class _Trash:
    """Deferred deletion (see the module docstring): put() moves a path into work/trash
    (a rename frees no inode), deleted with work once the measurements are done."""

    dir: Path | None = None
    _n = 0

    @classmethod
    def init(cls, work: Path) -> None:
        cls.dir = work / "trash"
        cls.dir.mkdir()

    @classmethod
    def put(cls, path: Path) -> None:
        if not os.path.lexists(path):
            return
        assert cls.dir is not None
        buildkit.unmount_under(path)
        cls._n += 1
        os.rename(path, cls.dir / f"{cls._n}-{path.name}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
