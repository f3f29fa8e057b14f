"""Definitions at scale: build, marshal and unmarshal a 10,000-op graph (a chain and a wide
merge). Target: marshal and unmarshal each under 0.3 s (best of 5, wall clock; the CPU time
of that run is shown too, as other processes on the machine inflate wall time). The baseline
is plain msgpack packing/unpacking of the same ops in the same run (no digests, no
validation): "x msgpack" is how many times slower llb is than that floor."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llb  # noqa: E402
from llb.codec import to_wire  # noqa: E402

N = 10_000
TARGET = 0.3
REPEAT = 5


def chain() -> llb.State:
    s = llb.scratch()
    for i in range(N):
        s = s.file(llb.mkfile(f"/f{i}", b"x"))
    return s


def wide() -> llb.State:
    return llb.merge([llb.scratch().file(llb.mkfile(f"/f{i}", b"x")) for i in range(N)])


def best(fn: Callable[[], object]) -> tuple[float, object, float]:
    """(best wall seconds, result, CPU seconds of that run)."""
    runs, result = [], None
    for _ in range(REPEAT):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    wall, cpu = min(runs)
    return wall, result, cpu


def main() -> int:
    failed = False
    print(f"{'graph':<6} {'step':<10} {'ops':>6} {'seconds':>8} {'cpu s':>7} {'ops/s':>10} "
          f"{'target':>8} {'x msgpack':>9}")
    for name, make in (("chain", chain), ("wide", wide)):
        build_s, state, build_c = best(make)
        marshal_s, data, marshal_c = best(lambda: state.to_definition().to_bytes())
        unmarshal_s, definition, unmarshal_c = best(lambda: llb.Definition.from_bytes(data))
        assert definition.to_bytes() == data
        n = len(definition.ops)
        wires = [to_wire(op) for op in definition.ops.values()]
        pack_s, packed, _ = best(lambda: [msgpack.packb(w) for w in wires])
        unpack_s, _, _ = best(lambda: [msgpack.unpackb(b) for b in packed])
        rows = [("build", build_s, build_c, None, None),
                ("marshal", marshal_s, marshal_c, TARGET, pack_s),
                ("unmarshal", unmarshal_s, unmarshal_c, TARGET, unpack_s)]
        for step, secs, cpu, target, base in rows:
            ok = target is None or secs < target
            failed |= not ok
            tgt = f"<{target:.1f}s" if target else "-"
            ratio = f"{secs / base:.1f}" if base else "-"
            print(f"{name:<6} {step:<10} {n:>6} {secs:>8.3f} {cpu:>7.3f} {n / secs:>10,.0f} {tgt:>8} "
                  f"{ratio:>9}{'' if ok else '  MISSED'}")
        print(f"{name:<6} bytes: {len(data):,}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
