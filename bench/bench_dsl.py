"""DSL and start-up benchmarks (issue 13), each in fresh `llb` / Python processes:

  evaluate+marshal   a build file's build() run and its definition marshalled to bytes, as
                     `llb solve`/`llb marshal` do (cli.loader.load_build_file, to_bytes), for
                     the merge-files shapes: 100 FileOps x 100 mkfiles (10,000 file actions)
                     and 1,000 x 100 (100,000); wall seconds inside the process (interpreter
                     start and importing the DSL excluded, shown apart), its CPU seconds (less
                     moved by other jobs waiting for the same cores) and its peak RSS
  cached chain 100   `llb solve build.py --output type=local,dest=NEW` of chain 100, fully
                     cached, wall time of the whole process; and its instruction count under
                     callgrind (valgrind), which other jobs on the machine do not disturb

  floor              the interpreter alone, `python -c pass` and `python -S -c pass` (no site:
                     the venv's .pth files), timed and counted the same way in the same run:
                     what no Python command can go under

Targets: 10,000 actions < 0.05 s; 100,000 actions < 0.5 s and < 200 MiB peak; cached chain
100 < 0.05 s wall. Medians of REPEAT runs. A missed target is printed, not an error. The
10,000-action evaluation is also counted in instructions under callgrind (the process with
and without the evaluation), a figure other jobs on the machine do not move."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from placement import discard, fresh_dir
from shapes import build_file

HERE = Path(__file__).resolve().parent
LLB = [sys.executable, "-c", "from llb.cli.main import run; run()"]
_bin = Path(sys.executable).parent / "llb"
if _bin.exists():
    LLB = [str(_bin)]
REPEAT = 7
_ENV = dict(os.environ)
_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
_ENV.pop("PYTHONPYCACHEPREFIX", None)

EVAL_TARGETS = {100: (0.05, None), 1000: (0.5, 200.0)}  # parts -> (seconds, peak MiB)
CACHED_TARGET = 0.05

_CHILD = r"""
import resource, sys, time, json
t0 = time.perf_counter()
c0 = time.process_time()
import llb.cli.loader as loader
import llb.merge, llb.sources, llb.state  # the DSL (a build file's `import llb` loads it lazily)
t1 = time.perf_counter()
c1 = time.process_time()
from pathlib import Path
if sys.argv[2:] == ["import-only"]:
    sys.exit(0)
definition = loader.load_build_file(Path(sys.argv[1]))
data = definition.to_bytes()
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({"import": t1 - t0, "eval": t2 - t1, "cpu": c2 - c1, "bytes": len(data),
                  "ops": len(definition.ops),
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def evaluate(build: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", _CHILD, str(build)], capture_output=True,
                       text=True, env=_ENV)
    if p.returncode:
        raise RuntimeError(p.stderr.strip().splitlines()[-1:])
    return json.loads(p.stdout)


def _callgrind(argv: list[str]) -> int | None:
    """Instructions of one process under callgrind, or None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV)
    for line in p.stderr.decode(errors="replace").splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    return None


def eval_instructions(build: Path) -> int | None:
    """Instructions of evaluating+marshalling `build`: the child with it less without it."""
    full = _callgrind([sys.executable, "-c", _CHILD, str(build)])
    base = _callgrind([sys.executable, "-c", _CHILD, str(build), "import-only"])
    return full - base if full is not None and base is not None else None


def cached_solve(work: Path, build: Path, root: Path, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one `llb solve`."""
    out = work / f"out-{n}"
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(LLB + ["solve", str(build), "--root", str(root), "--progress", "plain",
                              "--output", f"type=local,dest={out}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise RuntimeError(p.stderr.decode(errors="replace").strip().splitlines()[-1:])
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV,
                   check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def instructions(work: Path, build: Path, root: Path) -> int | None:
    """Instructions of one cached solve under callgrind, or None without valgrind."""
    return _callgrind([*LLB, "solve", str(build), "--root", str(root), "--progress", "plain",
                       "--output", f"type=local,dest={work / 'out-callgrind'}"])


def main() -> int:
    work = fresh_dir(Path(os.environ.get("BENCH_DIR", "/tmp/llb-bench")) / "runs", "dsl-")
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "llb")],
                       stdout=subprocess.DEVNULL, env=_ENV)
        print(f"{'build file':<34}{'ops':>7}{'import s':>10}{'eval+marshal s':>16}{'cpu s':>7}"
              f"{'peak MiB':>10}  target")
        for parts, (limit, mem_limit) in EVAL_TARGETS.items():
            build = work / f"merge-files-{parts}.py"
            build.write_text(build_file("merge-files", parts))
            runs = [evaluate(build) for _ in range(REPEAT)]
            secs = statistics.median(r["eval"] for r in runs)
            imp = statistics.median(r["import"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            peak = max(r["peak"] for r in runs)
            ok = secs < limit and (mem_limit is None or peak < mem_limit)
            target = f"< {limit} s" + (f", < {mem_limit:.0f} MiB" if mem_limit else "")
            ins = eval_instructions(build) if parts < 1000 else None
            print(f"{f'merge-files {parts} ({parts * 100:,} actions)':<34}{runs[0]['ops']:>7}"
                  f"{imp:>10.3f}{secs:>16.3f}{cpu:>7.3f}{peak:>10.0f}  {target} "
                  f"{'met' if ok else 'MISSED'}"
                  + (f"; {ins / 1e6:.0f}M instructions (callgrind)" if ins else ""), flush=True)
        build = work / "chain-100.py"
        build.write_text(build_file("chain", 100))
        root = work / "root"
        cached_solve(work, build, root, 0)  # cold: fills the cache
        floors: dict[tuple[str, ...], list[tuple[float, float]]] = {
            args: [] for args in (("-c", "pass"), ("-S", "-c", "pass"))}
        runs = []
        for i in range(REPEAT):  # alternating, so a change of load moves both alike
            runs.append(cached_solve(work, build, root, i + 1))
            for args, times in floors.items():
                times.append(timed([sys.executable, *args]))
        walls = [w for w, _ in runs]
        wall = statistics.median(walls)
        cpu = statistics.median(c for _, c in runs)
        ok = wall < CACHED_TARGET
        ins = instructions(work, build, root)
        print(f"cached chain 100 solve: {wall:.3f} s wall (median of {REPEAT}, min "
              f"{min(walls):.3f}; CPU {cpu:.3f} s), target < {CACHED_TARGET} s "
              f"{'met' if ok else 'MISSED'}"
              + (f"; {ins / 1e6:.0f}M instructions (callgrind)" if ins else ""))
        for args, times in floors.items():
            f_wall = statistics.median(w for w, _ in times)
            f_cpu = statistics.median(c for _, c in times)
            f_ins = _callgrind([sys.executable, *args])
            print(f"  floor `python {' '.join(args)}`: {f_wall:.3f} s wall, CPU {f_cpu:.3f} s"
                  + (f", {f_ins / 1e6:.0f}M instructions" if f_ins else "")
                  + f"; the cached solve is {wall / f_wall:.1f}x its wall"
                  + (f", {ins / f_ins:.1f}x its instructions" if ins and f_ins else ""))
    finally:
        discard(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
