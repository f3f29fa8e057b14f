"""The scheduler with stand-in op handlers on a tiny in-memory store: parallelism, failure and
cancellation, exactly one terminal event per vertex, skipping unneeded misses, records."""

from __future__ import annotations

import threading
import time
import types
import uuid
from pathlib import Path

import pytest

import llb
from llb.solver import ops
from llb.solver.cachedb import CacheDB
from llb.solver.errors import SolveCancelledError, SolveError
from llb.solver.progress import Recorder
from llb.solver.solve import Solver
from signalhelp import interrupt_thread_starts


class FakeRef:
    def __init__(self, id: str):
        self.id = id


class FakeStore:
    """Only what the scheduler itself touches: leases, usage, get."""

    def __init__(self):
        self.leases: dict[str, set[str]] = {}

    def lease(self, sid, holder):
        self.leases.setdefault(sid, set()).add(holder)

    def release(self, sid, holder):
        self.leases.get(sid, set()).discard(holder)

    def usage(self, sid):
        return 100

    def usage_stamp(self, sid):
        return "1"

    def get(self, sid):
        return FakeRef(sid)

    def generation(self):
        return 0

    def pin(self, ids, since=None):
        return set()

    def close(self):
        pass


class Handlers:
    """Stand-in `file` and `source` handlers that record what ran and when."""

    def __init__(self, delay: float = 0.0, fail: str | None = None):
        self.delay = delay
        self.fail = fail
        self.ran: list[str] = []
        self.active = 0
        self.max_active = 0
        self.cancel_seen = 0
        self._lock = threading.Lock()

    def module(self, kind: str):
        def name(op):
            if kind == "source":
                return op.identifier
            return ", ".join(f"{a.action} {a.path}" for a in op.actions)

        def run(ctx, op, inputs):
            with self._lock:
                self.ran.append(ctx.name)
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                if self.fail and ctx.name == self.fail:
                    time.sleep(0.05)
                    raise RuntimeError("boom")
                end = time.time() + (self.delay if kind == "file" else 0)
                while time.time() < end:
                    if ctx.cancelled.is_set():
                        with self._lock:
                            self.cancel_seen += 1
                        raise SolveCancelledError("cancelled", vertex=ctx.vertex)
                    time.sleep(0.005)
                ctx.log("stdout", f"ran {ctx.name}\n".encode())
                return [FakeRef(uuid.uuid4().hex)]
            finally:
                with self._lock:
                    self.active -= 1

        return types.SimpleNamespace(name=name, run=run)


@pytest.fixture
def handlers():
    fakes = {"merge": types.SimpleNamespace(
        name=lambda op: f"merge ({len(op.inputs)} inputs)",
        run=lambda ctx, op, inputs: [FakeRef("m" + uuid.uuid4().hex)])}

    def install(**kw) -> Handlers:
        h = Handlers(**kw)
        for kind in ("file", "source"):
            fakes[kind] = h.module(kind)
        for kind, fake in fakes.items():
            ops.HANDLERS.override(kind, fake)
        return h

    yield install
    for kind in fakes:
        ops.HANDLERS.forget(kind)


def _solve(root: Path, state, **kw) -> tuple[Recorder, object]:
    rec = Recorder()
    with Solver(root, progress=rec, store=FakeStore(), workers=kw.pop("workers", 4)) as s:
        try:
            res = s.solve(state.to_definition(), **kw)
        except Exception as e:  # noqa: BLE001
            return rec, e
    return rec, res


def _terminal(rec: Recorder) -> dict[str, str]:
    out = {}
    for e in rec.events:
        if e["event"] in ("cached", "done", "error"):
            assert e["vertex"] not in out, e
            out[e["vertex"]] = e["event"]
    return out


def _wide(n: int):
    return llb.merge([llb.scratch().file(llb.mkfile(f"/f{i}", b"x")) for i in range(n)])


def test_independent_vertices_run_in_parallel_on_a_bounded_pool(tmp_path, handlers):
    h = handlers(delay=0.2)
    rec, res = _solve(tmp_path, _wide(6), workers=3)
    assert not isinstance(res, Exception), res
    assert h.max_active == 3
    assert res.done == 8 and res.cached == 0 and rec.total == 8
    assert set(_terminal(rec).values()) == {"done"}
    logs = [e for e in rec.events if e["event"] == "log"]
    assert len(logs) == 7 and logs[0]["stream"] == "stdout"


def test_second_solve_hits_and_records_are_leased(tmp_path, handlers):
    h = handlers()
    _solve(tmp_path, _wide(3))
    ran = len(h.ran)
    rec, res = _solve(tmp_path, _wide(3))
    assert len(h.ran) == ran and res.cached == 5 and res.done == 0
    db = CacheDB(tmp_path)
    recs = db.records()
    assert len(recs) == 5 and {r.size for r in recs} == {-1}  # measured lazily
    sized = db.fill_sizes(FakeStore(), recs)
    assert [r.size for r in sized] == [100] * 5  # the stand-in source also returns a ref
    assert {r.size for r in db.records()} == {100}
    db.close()


def test_first_failure_cancels_the_rest_and_caches_nothing_for_it(tmp_path, handlers):
    h = handlers(delay=2.0, fail="mkfile /f0")
    t0 = time.time()
    rec, err = _solve(tmp_path, _wide(4), workers=4)
    assert time.time() - t0 < 1.5  # the 2 s siblings were cancelled, not waited for
    assert isinstance(err, SolveError) and err.exit_code == 1
    assert "mkfile /f0" in str(err) and "boom" in str(err)
    assert h.cancel_seen >= 1
    term = _terminal(rec)
    assert len(term) == 6 and sorted(term.values()) == ["done"] + ["error"] * 5  # scratch done
    errors = {e["name"]: e["error"] for e in rec.events if e["event"] == "error"}
    assert "boom" in errors["mkfile /f0"]
    assert {errors[f"mkfile /f{i}"] for i in (1, 2, 3)} == {"cancelled"}
    assert errors["merge (4 inputs)"] == "cancelled"
    db = CacheDB(tmp_path)
    described = {r.description for r in db.records()}
    db.close()
    assert "mkfile /f0" not in described and "merge (4 inputs)" not in described


def test_a_miss_whose_consumer_hits_is_not_run(tmp_path, handlers):
    h = handlers()
    chain = llb.scratch().file(llb.mkfile("/a", b"1")).file(llb.mkfile("/b", b"2"))
    _solve(tmp_path, chain)
    db = CacheDB(tmp_path)
    victim = [r.key for r in db.records() if r.description == "mkfile /a"]
    db.remove(FakeStore(), victim)
    db.close()
    before = len(h.ran)
    rec, res = _solve(tmp_path, chain)
    assert len(h.ran) == before and res.cached == 3
    assert set(_terminal(rec).values()) == {"cached"}


def test_no_cache_and_ignore_cache_run_again_and_explain_why(tmp_path, handlers):
    handlers()
    s = _wide(2)
    _solve(tmp_path, s)
    rec, res = _solve(tmp_path, s, no_cache=True, explain=True)
    assert res.done == 4 and {why for _, _, why in res.explanations} == {"--no-cache"}
    marked = llb.scratch().file(llb.mkfile("/f0", b"x")).file(llb.mkfile("/g", b"y"))
    _solve(tmp_path, marked)
    d = marked.to_definition()
    from llb.ops import OpMetadata

    d.metadata[d.output.digest] = OpMetadata(ignore_cache=True)
    rec = Recorder()
    with Solver(tmp_path, progress=rec, store=FakeStore()) as solver:
        res = solver.solve(d, explain=True)
    assert res.done == 1 and res.explanations[0][2] == "ignore_cache is set on this op"


def test_a_signal_while_a_local_source_is_hashed_stops_the_solve_not_fails_it(
        tmp_path, monkeypatch):
    """The CLI's signal handler raises a KeyboardInterrupt in the main thread wherever it
    is; while a local context's content key is computed there, it must come out as the
    interruption (exit 128+N), never as that vertex's build failure (exit 1)."""
    from llb.solver.sources import local as local_source

    def interrupted(*a, **kw):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(local_source, "content_key", interrupted)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("x")
    rec = Recorder()
    with Solver(tmp_path / "root", progress=rec, store=FakeStore(), workers=1) as s:
        with pytest.raises(KeyboardInterrupt):
            s.solve(llb.local("ctx").to_definition(), local_dirs={"ctx": ctx})


def test_a_signal_a_worker_thread_received_stops_the_solve(tmp_path, handlers):
    """The kernel may hand a process's signal to any thread that does not block it (the
    main thread with a signal already pending, say): its Python handler still runs in the
    main thread, so the main loop must not sit in one long wait for an op that runs for
    hours. Here a worker-side thread receives the signal while a file op runs for 60 s."""
    import signal

    h = handlers(delay=60)

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGUSR1")

    def deliver() -> None:
        while h.active == 0:
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread alone

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Thread(target=deliver, daemon=True).start()
        started = time.monotonic()
        with Solver(tmp_path / "root", progress=Recorder(), store=FakeStore(), workers=2) as s:
            with pytest.raises(KeyboardInterrupt):
                s.solve(llb.scratch().file(llb.mkfile("/f", b"x")).to_definition())
        assert time.monotonic() - started < 20  # not the op's 60 s
        assert h.cancel_seen == 1  # the running op was cancelled, not waited for
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_signal_out_of_a_worker_threads_start_does_not_hang_the_solve(
        tmp_path, handlers, monkeypatch):
    """The signal handler's KeyboardInterrupt can come out of Thread.start() once the new
    worker runs (start() waits for it): the pool must still count that worker, or its
    shutdown hands out one stop too few and joins a worker that never gets one (a killed
    `llb solve` that hung for good in the torture tests)."""
    handlers(delay=2)
    interrupt_thread_starts(monkeypatch, "llb-vertex_1")
    outcome: list[BaseException] = []

    def solve() -> None:
        try:
            with Solver(tmp_path / "root", progress=Recorder(), store=FakeStore(),
                        workers=2) as s:
                s.solve(_wide(2).to_definition())
        except BaseException as e:  # noqa: BLE001 - looked at below
            outcome.append(e)

    runner = threading.Thread(target=solve, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "the solve hung in its pool's shutdown"
    assert len(outcome) == 1 and isinstance(outcome[0], KeyboardInterrupt), outcome
    time.sleep(0.1)
    assert [t.name for t in threading.enumerate() if t.name.startswith("llb-vertex")] == []


class _Turn:
    """A lock that tells when someone asks for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.asked = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.asked.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def test_an_op_waiting_for_its_turn_is_cancelled_with_the_solve_never_started(
        tmp_path, handlers):
    """Ops of a kind with a turn (ops.turn: FileOps) wait for it before they start; a signal
    meanwhile stops the solve at once: the queued ops never start and are not waited for."""
    import signal

    h = handlers()
    turn = _Turn()
    ops.HANDLERS.override("file", types.SimpleNamespace(**vars(h.module("file")), TURN=turn))
    turn.acquire()  # another FileOp of this process is running
    turn.asked.clear()

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGUSR1")

    main = threading.get_ident()
    finished = threading.Event()  # the test is past its solve: no signal any more

    def deliver() -> None:
        while not turn.asked.wait(0.05):  # until an op waits for its turn (a solve under way)
            if finished.is_set():
                return  # no op asked for it: the test fails without a signal
        signal.pthread_kill(main, signal.SIGUSR1)
        # a broken turn would wait for ever: free it, so the test fails, not hangs
        if not finished.wait(10) and turn.locked():
            turn.release()

    previous = signal.signal(signal.SIGUSR1, handler)
    rec = Recorder()
    try:
        threading.Thread(target=deliver, daemon=True).start()
        started = time.monotonic()
        with Solver(tmp_path / "root", progress=rec, store=FakeStore(), workers=2) as s:
            with pytest.raises(KeyboardInterrupt):
                s.solve(_wide(2).to_definition())
        assert time.monotonic() - started < 5
    finally:
        finished.set()
        signal.signal(signal.SIGUSR1, previous)
    assert [n for n in h.ran if n.startswith("mkfile")] == []
    assert [e for e in rec.events if e["event"] == "start" and e["name"].startswith("mkfile")] == []
    assert turn.locked()  # still the other FileOp's: nothing released a turn it did not take
    turn.release()
