"""Snapshot chain benchmark (issues 4 and 5, at the store level):
  chain N        N trusted prepare -> mkfile -> commit steps (what a FileOp chain does), per
                 snapshotter; ms per step against the issue's budget (BuildKit's overlayfs
                 4.3 s for chain 100, /5 = 8.6 ms a step including the solver), and against
                 the same chain of untrusted steps (an overlay mount or a full copy per step)
  untrusted      an untrusted prepare of a busybox-like root (one 2 MB binary, ~400
                 symlinks, a few dirs) on native, against `cp -a` of the same tree
`python bench/bench_snapshot_chain.py [--steps 100 1000] [--snapshotter overlayfs native]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llb.snapshot import Store  # noqa: E402
from placement import discard  # noqa: E402
from llb.snapshot.mount import overlay_works  # noqa: E402

STEP_BUDGET_MS = 4300 / 100 / 5  # BuildKit chain 100 cold on overlayfs, 5x faster
REPEAT = 5


def _mkfile(root: Path, rel: str, data: bytes) -> None:
    """What FileOp's mkfile does: a temp file renamed into place."""
    tmp = root / f".tmp-{rel}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, root / rel)


def chain(kind: str, steps: int, base: Path, trusted: bool = True) -> float:
    """Seconds for `steps` steps on a fresh root."""
    root = Path(tempfile.mkdtemp(dir=base))
    with Store(root, snapshotter=kind) as store:
        ref = None
        t0 = time.perf_counter()
        for i in range(steps):
            m = store.prepare(ref, trusted=trusted)
            with m.mount() as path:
                _mkfile(path, f"f{i}.txt", b"x" * 16)
            ref = m.commit()
        took = time.perf_counter() - t0
        with store.view(ref) as path:
            got = len(os.listdir(path))
        assert got == steps, (kind, got)
    discard(root)
    return took


def _busybox(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    for d in ("etc", "tmp", "usr/bin", "usr/sbin", "sbin", "var"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "bin/busybox").write_bytes(os.urandom(2 << 20))
    os.chmod(root / "bin/busybox", 0o755)
    for i in range(400):
        d = ("bin", "usr/bin", "sbin", "usr/sbin")[i % 4]
        os.symlink("/bin/busybox", root / d / f"tool{i}")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")


def untrusted(base: Path) -> tuple[float, float]:
    """Best-of-REPEAT seconds of an untrusted native prepare and of `cp -a` of the tree."""
    root = Path(tempfile.mkdtemp(dir=base))
    with Store(root, snapshotter="native") as store:
        m = store.prepare(None)
        with m.mount() as path:
            _busybox(path)
        ref = m.commit()
        with store.view(ref) as tree:
            src = Path(tree)
        best_prep = best_cp = float("inf")
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            m = store.prepare(ref)
            best_prep = min(best_prep, time.perf_counter() - t0)
            m.discard()
            dst = base / "cp"
            t0 = time.perf_counter()
            subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
            best_cp = min(best_cp, time.perf_counter() - t0)
            discard(dst)
    discard(root)
    return best_prep, best_cp


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--snapshotter", nargs="*", default=["overlayfs", "native"])
    ap.add_argument("--skip-untrusted", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        base = Path(tmp)
        for kind in args.snapshotter:
            if kind == "overlayfs" and not overlay_works(base / "probe"):
                print("overlayfs: mounts do not work here, skipped", flush=True)
                continue
            for n in args.steps:
                took = chain(kind, n, base)
                slow = chain(kind, min(n, 100), base, trusted=False) * n / min(n, 100)
                ms = took * 1000 / n
                print(f"chain {n:<5} {kind:<10} {took:7.2f} s  {ms:6.2f} ms/step  "
                      f"budget {STEP_BUDGET_MS:.1f} ms/step  ratio {ms / STEP_BUDGET_MS:.2f}  "
                      f"untrusted steps (first {min(n, 100)}) {slow * 1000 / n:6.2f} ms/step  "
                      f"speedup {slow / took:5.1f}x", flush=True)
        if not args.skip_untrusted:
            prep, cp = untrusted(base)
            print(f"untrusted prepare (native, busybox root) {prep * 1000:6.1f} ms  "
                  f"cp -a {cp * 1000:6.1f} ms  ratio {prep / cp:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
