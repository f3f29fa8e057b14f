"""Merge benchmark: 8 trees of 12,500 files (100,000 files) merged into one tree.

Measured in the same run, each in its own process, interleaved, best of REPEAT (wall time;
the CPU-time ratio, user + system, is printed too: it shows through a busy machine's I/O
noise):
  hardlink merge   snapshot.merge.apply_layers         vs  cp -al of the same trees
  copy fallback    apply_layers with every link EXDEV  vs  cp -a of the same trees
  through store    Store.merge of 8 committed refs (when snapshot.Store works here)
Targets: hardlink <= 1.5x cp -al, fallback <= 1.5x cp -a, peak memory (ru_maxrss of the
merging process) < 200 MiB. `python bench/bench_merge.py --files N` shrinks the run.
Nothing is deleted until the end: on ext4 without a journal (these machines) the inode
allocator checks, one by one, every inode freed in the last ~30 s (`recently_deleted()` in
fs/ext4/ialloc.c), so deleting one run's 100,000 copies slowed the next run's file creations
up to 4x (and only the copy fallback ran right after such a deletion).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from placement import discard

TREES = 8
FILES_PER_TREE = 12_500
REPEAT = 3
RATIO_TARGET = 1.5
MEM_TARGET_MIB = 200
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


# ------------------------------------------------------------------ the input trees


def make_tree(root: Path, index: int, files: int) -> None:
    """Directories shared by every tree (so the merge merges them), file names unique
    to this tree; small files of a few hundred bytes, a few symlinks."""
    per_dir = 100
    ndirs = max(1, files // per_dir)
    made = 0
    for d in range(ndirs):
        sub = root / f"pkg{d % 25:02d}" / f"mod{d // 25:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(per_dir):
            if made == files:
                return
            p = sub / f"t{index}_f{f:03d}.py"
            if f % 50 == 49:
                os.symlink(f"t{index}_f000.py", p)
            else:
                p.write_bytes((f"# tree {index} file {d}/{f}\n" * 8).encode())
            made += 1


def tree_changes(root: Path) -> list[tuple[str, str]]:
    """The change list a store records for a tree built on scratch: everything added."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            out.append((name if rel_dir == "." else f"{rel_dir}/{name}", "add"))
    out.sort(key=lambda c: tuple(c[0].split("/")))
    return out


# ------------------------------------------------------------------ child processes


def _cpu(who: str) -> float:
    """user + system CPU seconds of this process ("self") or its waited-for children."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_apply(trees: list[str], dest: str, fallback: bool) -> dict:
    """Runs in a fresh interpreter: apply the trees as layers, report time and peak RSS."""
    import errno

    import llb.snapshot.merge as merge
    from llb.snapshot.layers import Change, Layer

    layers = []
    for t in trees:
        changes = [Change(p, k) for p, k in tree_changes(Path(t))]
        layers.append(Layer(os.path.basename(t), Path(t), lambda _id, c=changes: c))
        layers[-1].changes()
    if fallback:
        def no_link(*a, **kw):
            raise OSError(errno.EXDEV, "forced copy fallback")
        merge._link = no_link
    cpu0 = _cpu("self")
    start = time.perf_counter()
    merge.apply_layers(Path(dest), layers)
    took = time.perf_counter() - start
    return {"seconds": took, "cpu": _cpu("self") - cpu0, "peak_mib": _peak_mib()}


def child_store(trees: list[str], root: str) -> dict:
    """Runs in a fresh interpreter: commit each tree as a snapshot (untimed), then time
    Store.merge of the 8 refs."""
    from llb.snapshot import Store

    store = Store(Path(root))
    refs = []
    for t in trees:
        m = store.prepare(None)
        with m.mount() as path:
            subprocess.run(["cp", "-a", f"{t}/.", str(path)], check=True)
        refs.append(m.commit())
    start = time.perf_counter()
    ref = store.merge(refs)
    took = time.perf_counter() - start
    files = 0
    with store.view(ref) as path:
        for _, _, names in os.walk(path):
            files += len(names)
    kind = store.kind
    store.close()
    return {"seconds": took, "peak_mib": _peak_mib(), "files": files, "kind": kind}


def run_child(func: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", func, *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{func} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_cp(flags: str, trees: list[Path], dest: Path) -> dict:
    dest.mkdir()
    cpu0 = _cpu("children")
    start = time.perf_counter()
    subprocess.run(["cp", flags, *[f"{t}/." for t in trees], str(dest)], check=True)
    return {"seconds": time.perf_counter() - start, "cpu": _cpu("children") - cpu0}


def count_files(root: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(root))


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=FILES_PER_TREE, help="files per tree")
    ap.add_argument("--repeat", type=int, default=REPEAT)
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        func, *rest = args.child
        if func == "apply":
            res = child_apply(rest[2:], rest[0], rest[1] == "copy")
        else:
            res = child_store(rest[1:], rest[0])
        print(json.dumps(res))
        return 0

    work = Path(tempfile.mkdtemp(prefix="llb-bench-merge-", dir=os.environ.get("TMPDIR")))
    try:
        trees = [work / f"tree{i}" for i in range(TREES)]
        for i, t in enumerate(trees):
            t.mkdir()
            make_tree(t, i, args.files)
        total = TREES * args.files
        print(f"merge of {TREES} trees x {args.files} files = {total} files")
        subprocess.run(["sync"])

        runs = {
            "cp_al": lambda d: time_cp("-al", trees, d),
            "link": lambda d: (d.mkdir(), run_child("apply", str(d), "link", *tree_args))[1],
            "cp_a": lambda d: time_cp("-a", trees, d),
            "copy": lambda d: (d.mkdir(), run_child("apply", str(d), "copy", *tree_args))[1],
        }
        tree_args = [str(t) for t in trees]
        check = work / "check"
        check.mkdir()
        run_child("apply", str(check), "link", *tree_args)
        assert count_files(check) == total, "merge produced the wrong number of files"
        same_inode = os.lstat(check / "pkg00/mod000/t0_f000.py").st_ino == \
            os.lstat(trees[0] / "pkg00/mod000/t0_f000.py").st_ino
        assert same_inode, "merged file does not share the source's inode"

        # Interleaved (baseline, ours, baseline, ours...) so that disk noise hits both; the
        # best of each is reported.
        results: dict[str, list[dict]] = {k: [] for k in runs}
        for r in range(args.repeat):
            for name, fn in runs.items():
                dest = work / f"out-{name}-{r}"
                subprocess.run(["sync"])  # settle the previous run's writes
                results[name].append(fn(dest))  # (kept until the end: see the docstring)
        cp_al, link, cp_a, copy = (min(results[k], key=lambda x: x["seconds"])
                                   for k in ("cp_al", "link", "cp_a", "copy"))

        def line(name: str, ours: dict, base: dict, base_name: str) -> bool:
            ratio = ours["seconds"] / base["seconds"]
            ok = ratio <= RATIO_TARGET
            cpu = min(r["cpu"] for r in results[key[name]]) / min(
                r["cpu"] for r in results[key[base_name]])
            print(f"{name:<16} {ours['seconds']:7.3f} s   {base_name} {base['seconds']:7.3f} s   "
                  f"ratio {ratio:5.2f}x (target <= {RATIO_TARGET}x) {'OK' if ok else 'MISSED'}   "
                  f"cpu ratio {cpu:5.2f}x   peak {ours['peak_mib']:6.1f} MiB")
            return ok

        key = {"hardlink merge": "link", "cp -al": "cp_al", "copy fallback": "copy",
               "cp -a ": "cp_a"}

        ok = line("hardlink merge", link, cp_al, "cp -al")
        ok &= line("copy fallback", copy, cp_a, "cp -a ")
        peak = max(link["peak_mib"], copy["peak_mib"])
        mem_ok = peak < MEM_TARGET_MIB
        print(f"peak memory      {peak:6.1f} MiB (target < {MEM_TARGET_MIB} MiB) "
              f"{'OK' if mem_ok else 'MISSED'}")

        try:
            store_root = work / "store"
            st = run_child("store", str(store_root), *tree_args)
        except Exception as e:  # the store is built in parallel; report, do not fail
            print(f"through store    unavailable ({e})")
        else:
            ratio = st["seconds"] / cp_al["seconds"]
            print(f"through store    {st['seconds']:7.3f} s   ({st['kind']}, {st['files']} files)"
                  f"   ratio to cp -al {ratio:5.2f}x   peak {st['peak_mib']:6.1f} MiB")
        return 0
    finally:
        discard(work)


if __name__ == "__main__":
    sys.exit(main())
