"""Image benchmarks: exporting and pulling a 1 GiB image of 1,000 files, llb side by side
with real BuildKit v0.11.6 and with the plain tools, in the same run.

  export cold    a solved (cached) result, no blob made yet: `llb solve --output
                 type=oci,dest=DIR/` (pack, compress gzip, write the layout) vs
                 `buildctl build --output type=oci,dest=DIR,tar=false` of the Go client's
                 definition of the same graph, both after an untimed solve of the graph
  export warm    the same export again into the same layout: every blob exists
  floor          `tar -cf - TREE | gzip -1` and `tar -cf - TREE | zstd -3` of the same tree
  pull           the image (pushed once by llb to a local docker-registry) pulled and
                 unpacked into a fresh root: `llb solve` of `llb.image(REF)` plus a one-file
                 FileOp on it (which needs its content) vs the same graph on a fresh
                 buildkitd vs `skopeo copy docker://REF oci:DIR` + `umoci unpack`
Figures are medians of ROUNDS rounds whose order rotates. MB/s counts the uncompressed tree
(1 GiB). Peak memory is the largest ru_maxrss of the llb process.

Targets (issue 11): cold export and pull at least 2x faster than BuildKit; an export whose
blobs all exist under 0.2 s; peak memory under 200 MiB.

Placement (bench/placement.py): every run gets a fresh directory under one spread parent and
nothing is deleted until the benchmark ends; the page cache is synced before each timed run.

The pull is also compared in CPU seconds (user + system: llb's process; buildkitd's, from
its /proc stat, plus buildctl's), which load from other jobs on the machine moves less
than wall time. "rounds" gives the spread: the lowest and highest per-round ratio.

`python bench/bench_image.py [--files N] [--rounds N] [--only export|pull] [--lean]`;
BENCH_DIR (default /tmp/llb-bench). `--lean` (pulls only) is for a disk short of room: the
tree, the pushing root and the registry live in /dev/shm (none of them is timed), and each
pull's directory is removed once measured, and `skopeo copy` + `umoci unpack` is left out
(about 2 GB of disk at a time instead of 5 GB per round kept to the end)."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import buildkit
from placement import discard, fresh_dir, spread

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "helpers"))
LLB = str(Path(sys.executable).parent / "llb")
FILE_SIZE = 1 << 20
ROUNDS = 3
RATIO_TARGET = 2.0
WARM_TARGET = 0.2
MEM_TARGET_MIB = 200

BUILD = '''import llb


def build():
    tree = llb.local("tree")
    return llb.scratch().file(llb.copy(tree, "/", "/data", create_dest_path=True),
                              name="copy tree").cmd(["/bin/true"])
'''

PULL = '''import llb

REF = {ref!r}


def build():
    return llb.image(REF).file(llb.mkfile("/.pulled", "yes\\n"), name="touch")
'''


# The `llb` processes run as an installed llb does: with bytecode (pip compiles it at
# install; a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on
# each run, some 0.3 s of a pull). llb's own bytecode is written beside its sources.
_ENV = dict(os.environ)
_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
_ENV.pop("PYTHONPYCACHEPREFIX", None)
_ROOMS = ("llb", "snapshot", "solver", "cli", "content", "fsutil", "executor", "remote")


def compile_llb() -> None:
    """Write llb's bytecode once, before anything is timed."""
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *(str(REPO / room) for room in _ROOMS if (REPO / room).is_dir())],
                   stdout=subprocess.DEVNULL, env=_ENV)


def make_tree(root: Path, files: int) -> None:
    """`files` files of 1 MiB in 10 directories, half random and half text, so that gzip
    and zstd have something to do (about 2:1)."""
    rnd = random.Random(42)
    text = b"".join(f"line {i:06d} of some configuration or source text\n".encode()
                    for i in range(2048))
    for i in range(files):
        d = root / f"dir{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        parts = []
        for _ in range(FILE_SIZE // (128 << 10)):
            parts.append(rnd.randbytes(64 << 10))
            parts.append(text[: 64 << 10])
        (d / f"file{i:04d}.bin").write_bytes(b"".join(parts)[:FILE_SIZE])


def timed(argv: list[str] | str, *, stdin: bytes | None = None, shell: bool = False,
          timeout: float = 1800) -> tuple[float, int, str, int]:
    """(wall seconds, exit code, stderr, 0) of one command, after a sync."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       shell=shell, timeout=timeout, env=_ENV)
    wall = time.perf_counter() - t0
    return wall, p.returncode, p.stderr.decode(errors="replace"), 0


def llb_rss(argv: list[str]) -> tuple[float, int, str, int]:
    """Like timed(), but the peak RSS of this one process (through a fresh interpreter
    that waits for it alone)."""
    wall, rc, err, rss, _ = llb_usage(argv)
    return wall, rc, err, rss


def llb_usage(argv: list[str]) -> tuple[float, int, str, int, float]:
    """(wall seconds, exit code, stderr, peak RSS KiB, CPU seconds user + system) of one
    process, through a fresh interpreter that waits for it alone."""
    os.sync()
    code = ("import os, resource, subprocess, sys, time, json\n"
            "t0 = time.perf_counter()\n"
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "wall = time.perf_counter() - t0\n"
            "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "sys.stdout.write(json.dumps([wall, p.returncode, r.ru_maxrss, "
            "r.ru_utime + r.ru_stime]))\n"
            "sys.stderr.buffer.write(p.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, env=_ENV)
    wall, rc, rss, cpu = json.loads(p.stdout)
    return wall, rc, p.stderr.decode(errors="replace"), rss, cpu


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def export_duration(stderr: str) -> float | None:
    """The export step's own duration from `--progress json`."""
    for line in stderr.splitlines():
        if line.startswith("{"):
            ev = json.loads(line)
            if ev.get("vertex") == "export" and ev.get("event") == "done":
                return float(ev["duration"])
    return None


def check(rc: int, err: str, what: str) -> None:
    if rc != 0:
        raise SystemExit(f"{what} failed ({rc}): {err[-2000:]}")


class Figures:
    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        v = self.values.get(key)
        return statistics.median(v) if v else None

    def ratio_range(self, ours: str, theirs: str) -> str:
        """min-max of the per-round ratios theirs/ours (rounds paired in order)."""
        pairs = [b / a for a, b in zip(self.values.get(ours, []), self.values.get(theirs, []))
                 if a]
        return f"{min(pairs):.2f}-{max(pairs):.2f}" if pairs else "-"


def llb_export_round(work: Path, tree: Path, build: Path, figs: Figures) -> None:
    root = fresh_dir(work, "llb-root-")
    base = [LLB, "solve", str(build), "--local", f"tree={tree}", "--root", str(root),
            "--progress", "json"]
    _, rc, err, _ = timed(base)
    check(rc, err, "llb solve")
    layout = fresh_dir(work, "llb-layout-")
    wall, rc, err, rss = llb_rss([*base, "--output", f"type=oci,dest={layout}/,name=bench/img:1"])
    check(rc, err, "llb cold export")
    figs.add("llb cold", wall)
    figs.add("llb cold export step", export_duration(err) or wall)
    figs.add("llb rss", rss)
    wall, rc, err, rss = llb_rss([*base, "--output", f"type=oci,dest={layout}/,name=bench/img:1"])
    check(rc, err, "llb warm export")
    figs.add("llb warm", wall)
    figs.add("llb warm export step", export_duration(err) or wall)
    figs.add("llb rss", rss)


def bk_export_round(work: Path, tree: Path, definition: Path, figs: Figures) -> None:
    daemon = buildkit.Daemon(fresh_dir(work, "bk-"), "overlayfs")
    try:
        argv = [str(buildkit.BIN / "buildctl"), "--addr", daemon.addr, "build", "--local",
                f"tree={tree}"]
        data = definition.read_bytes()
        _, rc, err, _ = timed(argv, stdin=data)
        check(rc, err, "buildctl solve")
        layout = fresh_dir(work, "bk-layout-")
        out = ["--output", f"type=oci,dest={layout},tar=false,name=bench/img:1"]
        wall, rc, err, _ = timed([*argv, *out], stdin=data)
        check(rc, err, "buildctl cold export")
        figs.add("bk cold", wall)
        wall, rc, err, _ = timed([*argv, *out], stdin=data)
        check(rc, err, "buildctl warm export")
        figs.add("bk warm", wall)
    finally:
        daemon.stop()


def floor_round(work: Path, tree: Path, figs: Figures) -> None:
    d = fresh_dir(work, "floor-")
    for key, comp in (("tar|gzip -1", "gzip -1"), ("tar|zstd -3", "zstd -3 -q")):
        wall, rc, err, _ = timed(f"tar -C {tree} -cf - . | {comp} > {d}/out", shell=True)
        check(rc, err, key)
        figs.add(key, wall)
        (d / "out").rename(d / f"out-{key.split()[0].replace('|', '-')}")


def pull_rounds(work: Path, files: int, tree: Path, build: Path, rounds: int,
                figs: Figures, setup: Path, lean: bool = False) -> None:
    """The pull rounds; the registry and the pushing root live in `setup`; `lean`: each
    pull's directory (and the pushing root) is removed once measured."""
    from registryhelp import Registry

    def done(d: Path) -> None:
        if lean:
            shutil.rmtree(d, ignore_errors=True)

    reg = Registry(fresh_dir(setup, "registry-"))
    try:
        ref = f"{reg.host}/bench/img:1"
        root = fresh_dir(setup, "push-root-")
        wall, rc, err, _ = timed([LLB, "solve", str(build), "--local", f"tree={tree}", "--root",
                                  str(root), "--progress", "plain", "--output",
                                  f"type=image,name={ref},push=true"])
        check(rc, err, "llb push")
        figs.add("llb push", wall)
        done(root)
        pull = work / "pull.py"
        pull.write_text(PULL.format(ref=ref))
        graph = json.dumps({"root": 1, "nodes": [
            {"op": "image", "ref": ref},
            {"op": "file", "base": 0, "actions": [{"a": "mkfile", "path": "/.pulled",
                                                   "data": "eWVzCg==", "mode": 420}]}]})
        bk_def = buildkit.definition(graph, work / "pull.pb")
        runs: list[Callable[[], None]] = []

        def llb_pull() -> None:
            r = fresh_dir(work, "pull-llb-")
            wall, rc, err, rss, cpu = llb_usage([LLB, "solve", str(pull), "--root", str(r),
                                                 "--progress", "plain"])
            check(rc, err, "llb pull")
            figs.add("llb pull", wall)
            figs.add("llb pull cpu", cpu)
            figs.add("llb rss", rss)
            done(r)

        def tools_pull() -> None:
            d = fresh_dir(work, "pull-tools-")
            w1, rc, err, _ = timed(["skopeo", "copy", "--src-tls-verify=false",
                                    f"docker://{ref}", f"oci:{d}/layout:x"])
            check(rc, err, "skopeo copy")
            w2, rc, err, _ = timed(["umoci", "unpack", "--image", f"{d}/layout:x",
                                    str(d / "bundle")])
            check(rc, err, "umoci unpack")
            figs.add("skopeo+umoci pull", w1 + w2)
            done(d)

        def bk_pull() -> None:
            d = fresh_dir(work, "bk-pull-")
            daemon = buildkit.Daemon(d, "overlayfs")
            try:
                cpu0 = daemon.cpu() + children_cpu()
                wall, rc, err, _ = timed([str(buildkit.BIN / "buildctl"), "--addr", daemon.addr,
                                          "build"], stdin=bk_def.read_bytes())
                check(rc, err, "buildctl pull")
                figs.add("bk pull", wall)
                figs.add("bk pull cpu", daemon.cpu() + children_cpu() - cpu0)
            finally:
                daemon.stop()
            done(d)

        runs = [llb_pull, bk_pull] if lean else [llb_pull, tools_pull, bk_pull]
        try:
            import llb.solver.sources.image  # noqa: F401 - the image source pulls need
        except ImportError:
            print("bench_image: pulls skipped (this llb has no image source)")
            runs = [bk_pull] if lean else [tools_pull, bk_pull]
        for i in range(rounds):
            for run in runs[i % len(runs):] + runs[: i % len(runs)]:
                run()
    finally:
        reg.stop()


def fmt(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.2f} {unit}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--only", choices=["export", "pull"],
                    help="run only the export rounds or only the pull rounds")
    ap.add_argument("--lean", action="store_true",
                    help="with --only pull: untimed parts in /dev/shm, runs removed once "
                         "measured, no skopeo+umoci (a disk short of room)")
    args = ap.parse_args(argv)
    if args.lean and args.only != "pull":
        ap.error("--lean goes with --only pull")
    why = buildkit.available()
    try:
        import llb.solver.layerblobs  # noqa: F401 - the layer packing image exports need
    except ImportError:
        why = why or "this llb has no layer packing (llb.solver.layerblobs)"
    if why:
        print(f"bench_image: skipped ({why})")
        return 0
    for tool in ("skopeo", "umoci", "docker-registry", "zstd", "gzip"):
        if shutil.which(tool) is None:
            print(f"bench_image: skipped ({tool} not installed)")
            return 0
    compile_llb()
    base = spread(Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench")))
    work = fresh_dir(base, "image-")
    setup = Path(tempfile.mkdtemp(prefix="llb-bench-image-", dir="/dev/shm")) \
        if args.lean else work
    tree = setup / "tree"
    make_tree(tree, args.files)
    size_mb = args.files * FILE_SIZE / 1e6
    build = work / "build.py"
    build.write_text(BUILD)
    graph = json.dumps({"root": 1, "nodes": [
        {"op": "local", "name": "tree"},
        {"op": "file", "base": None, "actions": [
            {"a": "copy", "src": 0, "srcPath": "/", "destPath": "/data",
             "createDestPath": True}]}]})
    definition = buildkit.definition(graph, work / "export.pb")
    figs = Figures()
    parties: list[Callable[[], None]] = [
        lambda: llb_export_round(work, tree, build, figs),
        lambda: bk_export_round(work, tree, definition, figs),
        lambda: floor_round(work, tree, figs),
    ]
    try:
        if args.only != "pull":
            for i in range(args.rounds):
                for run in parties[i % 3:] + parties[: i % 3]:
                    run()
        if args.only != "export":
            pull_rounds(work, args.files, tree, build, args.rounds, figs, setup, args.lean)
    finally:
        discard(work)
        discard(setup)
    report(figs, size_mb)
    return 0


def report(figs: Figures, size_mb: float) -> None:
    m = figs.median
    rows = [("export cold", "llb cold", "bk cold"), ("export warm", "llb warm", "bk warm"),
            ("pull + unpack", "llb pull", "bk pull"), ("pull CPU", "llb pull cpu", "bk pull cpu")]
    print(f"{'':16}{'llb':>10}{'MB/s':>8}{'BuildKit':>11}{'MB/s':>8}{'ratio':>8}"
          f"{'rounds':>12}")
    for label, ours, theirs in rows:
        a, b = m(ours), m(theirs)
        if a is None and b is None:
            continue
        ratio = f"{b / a:.2f}x" if a and b else "-"
        print(f"{label:16}{fmt(a):>10}{size_mb / a if a else 0:>8.0f}{fmt(b):>11}"
              f"{size_mb / b if b else 0:>8.0f}{ratio:>8}{figs.ratio_range(ours, theirs):>12}")
    for key in ("tar|gzip -1", "tar|zstd -3", "skopeo+umoci pull", "llb push"):
        v = m(key)
        if v is None:
            continue
        print(f"{key:16}{fmt(v):>10}{size_mb / v if v else 0:>8.0f}")
    cold_step, warm_step = m("llb cold export step"), m("llb warm export step")
    if cold_step is not None:
        print(f"llb export step alone: cold {fmt(cold_step)}, warm {fmt(warm_step)}")
    rss = max(figs.values.get("llb rss", [0])) / 1024
    verdicts = []
    for label, ours, theirs in (("cold export", "llb cold", "bk cold"),
                                ("pull", "llb pull", "bk pull")):
        a, b = m(ours), m(theirs)
        if a and b:
            ok = b / a >= RATIO_TARGET
            verdicts.append(f"{label} {b / a:.2f}x faster than BuildKit "
                            f"({'ok' if ok else 'MISSED'}: target {RATIO_TARGET}x)")
    if warm_step is not None:
        verdicts.append(f"warm export step {warm_step:.3f} s "
                        f"({'ok' if warm_step < WARM_TARGET else 'MISSED'}: target < {WARM_TARGET} s)")
    verdicts.append(f"peak memory {rss:.0f} MiB "
                    f"({'ok' if rss < MEM_TARGET_MIB else 'MISSED'}: target < {MEM_TARGET_MIB} MiB)")
    for v in verdicts:
        print(v)
    if os.environ.get("BENCH_VERBOSE"):
        for key, values in sorted(figs.values.items()):
            print(f"  {key}: {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
