"""The scheduler: resolves every vertex of a solve to cached, done or error.

The main thread computes cache keys in waves (inputs first; a key needs its full inputs'
keys and, for inputs read only in part, their refs), looks each wave up in the cache DB in
one batch, and hands misses whose result is needed to a bounded thread pool. A miss runs
under a per-cache-key file lock and re-checks the DB first, so identical vertices run once
across concurrent solves. The first failure cancels the rest; only whole results are
committed and recorded.

A local source's key is a checksum of the host directory, which may change while it is
copied: on a miss, the result is recorded under the checksum of what its snapshot holds,
and the vertices reading it are keyed only after that (a provisional key never reaches a
record)."""

from __future__ import annotations

import errno
import functools
import threading
import time
from _queue import Empty, SimpleQueue  # queue's C half: queue.py loads heapq and more (~2.4M instructions)
from collections.abc import Callable

from llb.errors import DefinitionError, LLBError, NoSpaceError, is_no_space
from llb.fsutil import PathTooLongError
from llb.ops import Copy, ExecOp, SourceOp
from llb.records import Generic, Record
from llb.snapshot import Ref, Store
from llb.solver.cachedb import CacheDB
from llb.solver.cachekey import blanked_digest, blanked_digest_from_bytes, compute_key, explain as _explain
from llb.solver.errors import SolveCancelledError, SolveError
from llb.solver import ops as handlers
from llb.solver.locks import KeyLock
from llb.solver.ops.context import OpContext
from llb.solver.progress import Progress
from llb.solver.sources import SourceEnv, is_local, keyed_after_run, source_for
from llb.solver.vertex import Vertex

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TypeVar

    _T = TypeVar("_T")
else:
    _T = object

_WAKE = 0.1  # seconds the main thread waits at most before it runs pending signal handlers
_TURN_POLL = 0.1  # seconds between looks at the cancellation while an op waits for its turn


class _RunResult(Record):
    """What running a vertex gave: "cached" (another solve recorded it meanwhile) or "done",
    the output snapshot ids, the refs when it ran here, how long it took, and the key its
    result is recorded under (a source keyed by what it copied may differ from the key it
    was looked up with)."""

    status: str
    outputs: tuple[str | None, ...]
    refs: list[Ref | None] | None
    duration: float
    key: str


class Scheduler:
    """One solve's run over its vertices (see the module docstring)."""

    def __init__(self, *, store: Store, db: CacheDB, progress: Progress, root: str, workers: int,
                 vertices: list[Vertex], output: Vertex, env: SourceEnv, no_cache: bool,
                 explain: bool, op_bytes: Callable[[str], bytes] | None = None):
        self.store = store
        self.db = db
        self.progress = progress
        self.root = root
        self.workers = workers
        self.vertices = vertices
        self.output = output
        self.env = env
        self.no_cache = no_cache
        self.explain = explain
        self._op_bytes = op_bytes  # digest -> canonical op bytes, when the definition has them
        self.cancelled = threading.Event()
        self._by_digest = {v.digest: v for v in vertices}
        self.ready: list[Vertex] = []
        self.runnable: list[Vertex] = []
        self.touched: list[str] = []
        self.error: LLBError | None = None
        self.running = 0
        self.explanations: list[tuple[int, str, str]] = []
        self._done_q: SimpleQueue[tuple[Vertex, _Outcome[_RunResult]]] = SimpleQueue()
        # digest -> content key (or its error), prefetched
        self._source_keys: dict[str, str | None | BaseException] = {}

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        for v in self.vertices:
            v.key_deps = len(v.inputs)
            v.run_deps = len(v.inputs)
            if not v.inputs:
                self.ready.append(v)
                if isinstance(v.op, SourceOp) and keyed_after_run(v.op):
                    v.provisional = True
        self._want_ref(self.output)
        for v in self.vertices:
            for pos, (u, _) in enumerate(v.inputs):
                if pos in v.partial:
                    self._want_ref(u)
        self._prefetch_source_keys([v for v in self.ready if v.op.kind == "source"])
        pool = _LazyPool(self.workers)
        try:
            while True:
                if self.error is None:
                    self._key_wave()
                    self._submit(pool)
                if self.running == 0:
                    if self.error is not None or not (self.ready or self.runnable):
                        break
                    continue
                self._complete(*self._next_done())
        except BaseException:
            self.cancelled.set()
            raise
        finally:
            pool.shutdown(wait=True)
            while not self._done_q.empty():
                self._complete(*self._done_q.get())
            self._finish()

    def _finish(self) -> None:
        """Give every vertex still open its terminal event and mark hits as used."""
        for v in self.vertices:
            if v.terminal is None:
                if v.missed and not v.want_ref or (v.key is not None and v.hit):
                    self._terminal(v, "cached")  # its result was not needed
                else:
                    self._terminal(v, "error", error="cancelled")
        if self.touched:
            self.db.touch_stale(self.touched)

    # ------------------------------------------------------------------ keys

    def _key_wave(self) -> None:
        """Key every ready vertex (cascading through full inputs), then look all up at once;
        again while hits made more vertices ready."""
        while self.ready and self.error is None:
            self._one_wave()

    def _one_wave(self) -> None:
        keyed: list[Vertex] = []
        while self.ready and self.error is None:
            v = self.ready.pop()
            try:
                self._compute_key(v)
            except Exception as e:  # noqa: BLE001 - becomes the solve's error (a signal's
                self._fail(v, e)   # KeyboardInterrupt goes through: it is no build failure)
                break
            keyed.append(v)
            if not v.provisional:
                self._release_keys(v)
        if not keyed or self.error is not None:
            return
        lookup = [v.key for v in keyed if not (self.no_cache or v.ignore_cache)]
        found = self._lookup_pinned(lookup) if lookup else {}
        misses = []
        keyed.sort(key=lambda v: v.index)
        for v in keyed:
            outs = found.get(v.key)
            if outs is not None:
                v.hit = True
                self.touched.append(v.key)
                self._resolved(v, outs)
                self._terminal(v, "cached")
            else:
                v.missed = True
                misses.append(v)
        if self.explain and misses:
            self._explain(misses)
        for v in misses:
            if v.provisional and not v.want_ref:
                self._want_ref(v)  # its consumers' keys wait for what it copies
                continue
            if v.want_ref:
                for u, _ in v.inputs:
                    self._want_ref(u)
                if v.run_deps == 0:
                    self._queue_run(v)

    def _release_keys(self, v: Vertex) -> None:
        """`v`'s key is final: its consumers through full inputs may be keyed."""
        for c, _pos, partial in v.edges_out:
            if not partial:
                c.key_deps -= 1
                if c.key_deps == 0:
                    self.ready.append(c)

    def _lookup_pinned(self, keys: list[str]) -> dict[str, tuple[str | None, ...]]:
        """The records of these keys whose snapshots this solve now holds (pinned until it
        ends): a prune running beside it skips them. A record whose snapshot a prune removed
        between the lookup and the pin is no hit (its vertex runs again)."""
        since = self.store.generation()
        found = self.db.lookup_many(keys)
        if found:
            gone = self.store.pin([o for outs in found.values() for o in outs if o is not None],
                                  since)
            if gone:
                found = {k: outs for k, outs in found.items() if gone.isdisjoint(outs)}
        return found

    def _compute_key(self, v: Vertex) -> None:
        op = v.op
        source: str | None = None
        if isinstance(op, SourceOp):
            prefetched = self._source_keys.pop(v.digest, None)
            if isinstance(prefetched, BaseException):
                raise prefetched
            source = prefetched
            if source is None:
                source = source_for(op, v.digest).content_key(op, self.env, v.digest)
        parts = []
        inputs: list[dict[str, Any]] = []
        for pos, (u, idx) in enumerate(v.inputs):
            if pos in v.partial:
                value = self._partial_checksum(v, u, idx, v.partial[pos])
                inputs.append({"vertex": u.digest, "index": idx, "kind": "content", "value": value})
                parts.append("c:" + value)
            else:
                inputs.append({"vertex": u.digest, "index": idx, "kind": "key", "value": u.key})
                parts.append(f"k:{u.key}:{idx}")
        if self._op_bytes is not None:
            blanked = blanked_digest_from_bytes(self._op_bytes(v.digest), (u.digest for u, _ in v.inputs))
        else:
            blanked = blanked_digest(op)
        v.key = compute_key(blanked, parts, source)
        v.ingredients = {"op": blanked, "source": source, "inputs": inputs}

    def _prefetch_source_keys(self, sources: list[Vertex]) -> None:
        """Content keys of several local sources at once, on the worker threads: hashing a
        large context is OpenSSL's work, which runs beside the GIL (4 contexts of 64 MiB
        hash in about half the time). A failure is kept and raised when the vertex is keyed."""
        local = [(v, v.op) for v in sources if isinstance(v.op, SourceOp) and is_local(v.op)]
        if len(local) < 2 or self.workers < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        def key(item: tuple[Vertex, SourceOp]) -> str | None | BaseException:
            v, op = item
            try:
                return source_for(op, v.digest).content_key(op, self.env, v.digest)
            except BaseException as e:  # noqa: BLE001 - raised again by _compute_key
                return e

        with ThreadPoolExecutor(min(self.workers, len(local)),
                                thread_name_prefix="llb-checksum") as pool:
            for (v, _), k in zip(local, pool.map(key, local)):
                self._source_keys[v.digest] = k

    def _partial_checksum(self, v: Vertex, u: Vertex, idx: int, copies: list[Copy]) -> str:
        """Checksum of what the copies of `v` read from output `idx` of `u`."""
        from llb.solver import checksum as _checksum  # (hashlib: only for graphs with copies)

        sid = u.outputs[idx] if u.outputs is not None and idx < len(u.outputs) else None
        sums = []
        for c in copies:
            spec = _checksum.copy_spec(c)
            cs = self.db.checksum(sid, spec) if sid is not None else None
            if cs is None:
                if sid is None:
                    cs = _checksum.copy_checksum(None, c, vertex=v.digest)
                else:
                    with self.store.view(self.store.get(sid)) as top:
                        cs = _checksum.copy_checksum(top, c, vertex=v.digest)
                    self.db.put_checksum(sid, spec, cs)
            sums.append(cs)
        return sums[0] if len(sums) == 1 else compute_key("copies", sums)

    def _explain(self, misses: list[Vertex]) -> None:
        names = {v.digest: v.name for v in self.vertices}
        prev = self.db.history_many(v.digest for v in misses)
        for v in misses:
            if self.no_cache:
                why = "--no-cache"
            elif v.ignore_cache:
                why = "ignore_cache is set on this op"
            else:
                p = prev.get(v.digest)
                if p is None:
                    p = self.db.history_by_blanked(v.ingredients["op"])
                why = _explain(p, v.ingredients, names)
            v.explain = why
            self.explanations.append((v.index, v.name, why))

    # ------------------------------------------------------------------ refs and runs

    def _want_ref(self, v: Vertex) -> None:
        stack = [v]
        while stack:
            x = stack.pop()
            if x.want_ref:
                continue
            x.want_ref = True
            if x.missed:
                stack.extend(u for u, _ in x.inputs)
                if x.run_deps == 0:
                    self._queue_run(x)

    def _queue_run(self, v: Vertex) -> None:
        if not v.submitted:
            v.submitted = True
            self.runnable.append(v)

    def _resolved(self, v: Vertex, outputs: tuple[str | None, ...]) -> None:
        """`v`'s outputs are known: wake what waits for them."""
        v.outputs = tuple(outputs)
        if v.provisional:
            self._release_keys(v)
        for c, _pos, partial in v.edges_out:
            if partial:
                c.key_deps -= 1
                if c.key_deps == 0:
                    self.ready.append(c)
            c.run_deps -= 1
            if c.run_deps == 0 and c.missed and c.want_ref:
                self._queue_run(c)

    def ref(self, u: Vertex, idx: int) -> Ref | None:
        """The Ref of output `idx` of resolved vertex `u` (None: the empty tree)."""
        outputs = u.outputs
        if outputs is None:
            raise DefinitionError(f"vertex {u.name} has no outputs yet", vertex=u.digest)
        refs = u.refs
        if refs is None:
            refs = u.refs = [None] * len(outputs)
        r = refs[idx] if idx < len(refs) else None
        sid = outputs[idx] if idx < len(outputs) else None
        if r is None and sid is not None:
            r = refs[idx] = self.store.get(sid)
        return r

    def _submit(self, pool: _LazyPool) -> None:
        runnable, self.runnable = self.runnable, []
        for v in sorted(runnable, key=lambda x: x.index):
            try:
                inputs = [self.ref(u, idx) for u, idx in v.inputs]
            except Exception as e:  # noqa: BLE001 - e.g. a record whose snapshot is gone
                self._fail(v, e)
                return
            self.running += 1
            pool.submit(functools.partial(self._queue_done, v), self._run_vertex, v, inputs)

    def _next_done(self) -> tuple[Vertex, _Outcome[_RunResult]]:
        """The next finished run, waited for in short slices: a signal's Python handler runs
        in the main thread between bytecodes, and when the kernel hands the signal to a
        worker thread nothing wakes a main thread blocked in one long wait (a SIGTERM would
        wait for the running op to end, a sleeping container's hours)."""
        while True:
            try:
                return self._done_q.get(timeout=_WAKE)
            except Empty:
                pass

    def _queue_done(self, v: Vertex, outcome: _Outcome[_RunResult]) -> None:
        """(A worker thread:) hand a finished run to the main loop."""
        self._done_q.put((v, outcome))

    def _run_vertex(self, v: Vertex, inputs: list[Ref | None]) -> _RunResult:
        """Worker: lock the key, re-check the cache, run the op, commit and record."""
        assert v.key is not None
        lock = KeyLock(self.root, v.key)
        if not lock.acquire(self.cancelled):
            raise SolveCancelledError("cancelled", vertex=v.digest)
        turn = None
        try:
            if not (self.no_cache or v.ignore_cache):
                outs = self._lookup_pinned([v.key]).get(v.key)
                if outs is not None:
                    return _RunResult("cached", outs, None, 0.0, v.key)
            if self.cancelled.is_set():
                raise SolveCancelledError("cancelled", vertex=v.digest)
            turn = self._take_turn(v)  # (FileOps: one at a time, each started when it runs)
            t0 = time.time()
            self.progress.emit("start", v.digest, v.name, v.index)
            ctx = OpContext(store=self.store, root=self.root, vertex=v.digest, name=v.name,
                            local_dirs=dict(self.env.local_dirs), cancelled=self.cancelled,
                            oci_layouts=self.env.oci_layouts, puller=self.env.puller,
                            _log=self._log, _transfer=self._transfer)
            try:
                refs = list(handlers.run(ctx, v.op, inputs))
            except LLBError as e:
                if e.vertex is None:
                    e.vertex = v.digest
                if isinstance(e, SolveError):
                    self._name_vertex(v, e)
                if e.exit_code == 2 or isinstance(e, (SolveError, SolveCancelledError,
                                                      NoSpaceError)):
                    raise
                raise self._solve_error(v, ctx, str(e)) from e
            except Exception as e:  # noqa: BLE001 - an op failing is a build failure
                if is_no_space(e):  # the root's disk is full: _fail names the vertex
                    raise NoSpaceError.on("root", self.root, vertex=v.digest) from e
                raise self._solve_error(v, ctx, _describe(e)) from e
            ids = tuple(r.id if r is not None else None for r in refs)
            key, ingredients = v.key, v.ingredients
            if ctx.content_key is not None and ingredients is not None \
                    and ctx.content_key != ingredients["source"]:
                # the content changed between the key and the copy: key what was copied
                ingredients = dict(ingredients, source=ctx.content_key)
                key = compute_key(ingredients["op"], [], ctx.content_key)
                ctx.log("stderr", b"the source changed while it was read: its result is "
                                  b"cached under the content that was copied\n")
            # size -1: measured later by `llb du` / `llb prune` (walking a snapshot costs
            # O(files), too much for every vertex of a solve)
            self.db.add(self.store, key, v.digest, list(ids), v.description, -1, ingredients)
            if key != v.key:
                v.ingredients = ingredients
            return _RunResult("done", ids, refs, time.time() - t0, key)
        finally:
            if turn is not None:
                turn.release()
            lock.release()

    def _take_turn(self, v: Vertex) -> threading.Lock | None:
        """The lock v's op kind runs under (ops.turn), now held, or None for a kind without
        one; the solve's cancellation is looked at every _TURN_POLL seconds meanwhile: a
        queued op of a cancelled solve never starts."""
        turn = handlers.turn(v.op)
        if turn is not None:
            while not turn.acquire(timeout=_TURN_POLL):
                if self.cancelled.is_set():
                    raise SolveCancelledError("cancelled", vertex=v.digest)
        return turn

    def _name_vertex(self, v: Vertex, e: SolveError) -> None:
        """Make a build failure's one line say which vertex failed: `[n/m] name: ...`."""
        tag = f"[{v.index}/{len(self.vertices)}]"
        if e.message.startswith(tag):
            return
        e.message = f"{tag} {e.message}" if e.message.startswith(v.name) else f"{tag} {v.name}: {e.message}"
        if e.name is None:
            e.name = v.name

    def _solve_error(self, v: Vertex, ctx: OpContext, msg: str) -> SolveError:
        import shlex  # only for a failed exec's message

        cmd = shlex.join(v.op.args) if isinstance(v.op, ExecOp) else None
        return SolveError(f"[{v.index}/{len(self.vertices)}] {v.name}: {msg}", vertex=v.digest,
                          name=v.name, command=cmd, log_tail=ctx.log_tail())

    def _log(self, vertex: str, stream: str, data: bytes) -> None:
        v = self._by_digest.get(vertex)
        self.progress.emit("log", vertex, v.name if v else "", v.index if v else 0,
                           stream=stream, data=data.decode("utf-8", "replace"))

    def _transfer(self, vertex: str, blob: str, current: int, total: int, action: str) -> None:
        v = self._by_digest.get(vertex)
        self.progress.transfer(vertex, v.name if v else "", v.index if v else 0, blob, current,
                               total, action)

    def _complete(self, v: Vertex, outcome: _Outcome[_RunResult]) -> None:
        self.running -= 1
        try:
            status, outs, refs, duration, key = outcome.result()
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, SolveCancelledError) and self.error is not None:
                self._terminal(v, "error", error="cancelled")
            else:
                self._fail(v, e)
            return
        if refs is not None:
            v.refs = list(refs)
        v.key = key
        self._resolved(v, outs)
        if status == "cached":
            v.hit = True
            self.touched.append(v.key)
            self._terminal(v, "cached")
        else:
            self._terminal(v, "done", duration=round(duration, 6))

    def _fail(self, v: Vertex, e: BaseException) -> None:
        if is_no_space(e) and not isinstance(e, NoSpaceError):
            e = NoSpaceError.on("root", self.root, vertex=v.digest)
        if isinstance(e, NoSpaceError) and e.vertex in (None, v.digest) \
                and not e.message.endswith(v.name):
            # one line: which filesystem is full, then what was being done
            e.message = f"{e.message}: [{v.index}/{len(self.vertices)}] {v.name}"
            e.vertex = v.digest
        if not isinstance(e, LLBError):
            e = SolveError(f"[{v.index}/{len(self.vertices)}] {v.name}: {_describe(e)}",
                           vertex=v.digest, name=v.name)
        if self.error is None:
            self.error = e
        self.cancelled.set()
        self._terminal(v, "error", error=str(e))

    def _terminal(self, v: Vertex, event: str, **extra: Any) -> None:
        if v.terminal is not None:
            return
        v.terminal = event
        if v.explain is not None and event != "cached":
            extra["explain"] = v.explain
        self.progress.emit(event, v.digest, v.name, v.index, **extra)


class _Outcome(Generic[_T]):
    """What a call on a worker gave: its value, or the exception it raised."""

    __slots__ = ("value", "error")

    def __init__(self, value: _T | None = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def result(self) -> _T:
        """The value, or the call's exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # (set when no error)


class _LazyPool:
    """Up to `workers` threads running calls in the order submitted, started by the first
    submits: a fully cached solve runs no op and starts none. Plain threads and a queue, not
    concurrent.futures, which a cold solve would import with logging (7 ms of CPU)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._calls: SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             Callable[[_Outcome[Any]], None]] | None] = \
            SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, done: Callable[[_Outcome[_T]], None], fn: Callable[..., _T],
               *args: Any) -> None:
        """Run fn(*args) on a worker, then done(its outcome) there."""
        self._calls.put((fn, args, done))
        if len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name=f"llb-vertex_{len(self._threads)}")
            # listed before it starts: a signal's KeyboardInterrupt can come out of start()
            # once the thread runs, and shutdown must still stop (and join) it
            self._threads.append(t)
            t.start()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            fn, args, done = call
            try:
                outcome: _Outcome[Any] = _Outcome(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the main loop
                outcome = _Outcome(error=e)
            del call, fn, args
            done(outcome)

    def shutdown(self, wait: bool = True) -> None:
        """Let the workers finish what was submitted, then stop (and join them)."""
        for _ in self._threads:
            self._calls.put(None)
        if wait:
            for t in self._threads:
                if t.ident is not None:  # (not one start() was interrupted before running)
                    t.join()


def _describe(e: BaseException) -> str:
    """One line for an op's unexpected failure; a path longer than the system takes is
    said so, shortened (its full text can be thousands of characters)."""
    if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG and isinstance(e.filename, str):
        return str(PathTooLongError(e.filename))
    return f"{type(e).__name__}: {e}"
