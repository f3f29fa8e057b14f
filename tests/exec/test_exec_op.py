"""llb.solver.ops.exec against a real Store (both snapshotters): outputs, mounts, failures."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from exechelp import make_busybox_rootfs, needs_runc

from llb.ops import (
    MOUNT_CACHE, MOUNT_TMPFS, ExecOp, Input, Mount,
)
from llb.solver.errors import SolveCancelledError, InputError, SolveError
from llb.solver.ops import exec as exec_op
from llb.solver.ops.context import OpContext

pytestmark = needs_runc


@pytest.fixture
def base(store):
    m = store.prepare(None)
    with m.mount() as p:
        for name in os.listdir(make_busybox_rootfs(Path(p) / "_bb")):
            os.rename(Path(p) / "_bb" / name, Path(p) / name)
        os.rmdir(Path(p) / "_bb")
        (Path(p) / "data").mkdir()
        (Path(p) / "data" / "keep").write_text("keep")
        (Path(p) / "data" / "gone").write_text("gone")
        (Path(p) / "data" / "mode").write_text("mode")
    return m.commit()


def _ctx(store, **kw) -> OpContext:
    """A context whose `logs` lists what was logged line by line (one event may carry the
    lines of one read)."""
    logs: list[tuple[str, str, bytes]] = []
    ctx = OpContext(store=store, root=store.root, vertex="sha256:" + "0" * 64, name="exec",
                    _log=lambda v, s, d: logs.extend((v, s, ln) for ln in d.splitlines(True)),
                    **kw)
    ctx.logs = logs  # type: ignore[attr-defined]
    return ctx


def _op(script: str, *mounts: Mount, n_inputs: int = 1, **kw) -> ExecOp:
    root = Mount("/", input=0, output=0)
    return ExecOp(inputs=tuple(Input(f"sha256:{i:064x}") for i in range(n_inputs)),
                  args=("sh", "-c", script), mounts=(root,) + mounts, **kw)


def _tree(store, ref) -> dict[str, str]:
    """path -> 'd 755' / 'f 644 content' / 'l target' for the whole tree."""
    out: dict[str, str] = {}
    if ref is None:
        return out
    with store.view(ref) as root:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                rel = "/" + os.path.relpath(p, root)
                st = os.lstat(p)
                mode = f"{stat.S_IMODE(st.st_mode):o}"
                if stat.S_ISLNK(st.st_mode):
                    out[rel] = "l " + os.readlink(p)
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = "d " + mode
                elif stat.S_ISREG(st.st_mode):
                    out[rel] = f"f {mode} " + Path(p).read_text(errors="replace")
                else:
                    out[rel] = "s " + mode
    return out


def _changes(store, lower, upper) -> dict[str, str]:
    d = store.diff(lower, upper)
    if d is None:
        return {}
    return {"/" + c.path.lstrip("/"): c.kind for layer in d.layer_chain() for c in layer.changes()}


def test_exec_writes_deletes_chmods(store, base):
    ctx = _ctx(store)
    [root] = exec_op.run(ctx, _op("echo new > /data/new; rm /data/gone; chmod 600 /data/mode;"
                                  " mkdir -p /made/sub"), [base])
    tree = _tree(store, root)
    assert tree["/data/new"] == "f 644 new\n"
    assert "/data/gone" not in tree
    assert tree["/data/mode"] == "f 600 mode"
    assert tree["/data/keep"] == "f 644 keep"
    assert tree["/made/sub"] == "d 755"
    for stub in ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"):
        assert stub not in tree


def test_diff_holds_only_what_the_command_changed(store, base):
    [root] = exec_op.run(_ctx(store), _op("echo x > /data/new; rm /data/gone",
                                          Mount("/mnt/ro", input=0, readonly=True),
                                          Mount("/tmp2", type=MOUNT_TMPFS)), [base])
    ch = _changes(store, base, root)
    assert {p: k for p, k in ch.items() if p != "/data"} == {
        "/data/new": "add", "/data/gone": "delete"}


def test_true_changes_nothing(store, base):
    [root] = exec_op.run(_ctx(store), _op("true"), [base])
    assert _changes(store, base, root) == {}
    assert _tree(store, root) == _tree(store, base)


def test_stubs_leave_the_layer_empty(store, base):
    """runc's mount points and stub files (overlayfs: shown from the executor's underlay
    beneath the rootfs; native: made by runc, removed after) leave nothing in the layer of
    a command that changes nothing, not even /etc copied up."""
    [root] = exec_op.run(_ctx(store), _op("true"), [base])
    layer = root.layer_chain()[-1]
    assert layer.id == root.id
    assert layer.changes() == []
    assert os.listdir(layer.path("")) == []


def test_stubs_on_a_root_without_etc(store, base):
    """Without /etc in the rootfs the command still sees /etc/hosts; what it writes there
    is kept, the stubs are not, and a command that writes nothing leaves no /etc."""
    m = store.prepare(base)
    with m.mount() as p:
        for name in os.listdir(Path(p) / "etc"):
            os.unlink(Path(p) / "etc" / name)
        os.rmdir(Path(p) / "etc")
    bare = m.commit()
    [same] = exec_op.run(_ctx(store), _op("test -f /etc/hosts && test -f /etc/resolv.conf"),
                         [bare])
    assert _tree(store, same) == _tree(store, bare)
    assert "/etc" not in _tree(store, same)
    [root] = exec_op.run(_ctx(store), _op("echo x > /etc/mine"), [bare])
    tree = _tree(store, root)
    assert tree["/etc"] == "d 755" and tree["/etc/mine"] == "f 644 x\n"
    assert "/etc/hosts" not in tree and "/etc/resolv.conf" not in tree
    assert _changes(store, bare, root) == {"/etc": "add", "/etc/mine": "add"}


def test_a_chain_edits_in_place_and_every_step_keeps_its_tree(store, base):
    """Execs one on the other, each appending to a file in place (native: each step takes
    its parent's tree instead of copying it): every step's tree and diff stay its own."""
    refs = []
    ref = base
    for i in range(3):
        [ref] = exec_op.run(_ctx(store), _op(f"echo {i} >> /data/keep; echo {i} > /n{i}"),
                            [ref])
        refs.append(ref)
    for i, r in enumerate(refs):
        tree = _tree(store, r)
        assert tree["/data/keep"] == "f 644 keep" + "".join(f"{k}\n" for k in range(i + 1))
        assert sorted(p for p in tree if p.startswith("/n")) == [f"/n{k}" for k in range(i + 1)]
        lower = refs[i - 1] if i else base
        assert {p: k for p, k in _changes(store, lower, r).items() if p != "/data"} == {
            "/data/keep": "modify", f"/n{i}": "add"}
    assert _tree(store, base)["/data/keep"] == "f 644 keep"


def test_failure_message_tail_and_nothing_committed(store, base):
    before = set(store.snapshot_ids())
    ctx = _ctx(store)
    op = _op("i=0; while [ $i -lt 30 ]; do echo out$i; i=$((i+1)); done; touch /x; exit 2")
    with pytest.raises(SolveError) as e:
        exec_op.run(ctx, op, [base])
    err = e.value
    cmd = "sh -c i=0; while [ $i -lt 30 ]; do echo out$i; i=$((i+1)); done; touch /x; exit 2"
    assert str(err) == f'process "{cmd}" did not complete successfully: exit code: 2'
    assert err.exit_code == 1
    assert err.log_tail == [f"out{i}" for i in range(10, 30)]
    assert set(store.snapshot_ids()) == before


def test_streams_output_to_ctx_log(store, base):
    ctx = _ctx(store)
    exec_op.run(ctx, _op("echo a; echo b >&2; echo c"), [base])
    assert [(s, d) for _, s, d in ctx.logs] in (
        [("stdout", b"a\n"), ("stderr", b"b\n"), ("stdout", b"c\n")],
        [("stdout", b"a\n"), ("stdout", b"c\n"), ("stderr", b"b\n")],
        [("stderr", b"b\n"), ("stdout", b"a\n"), ("stdout", b"c\n")],
    )


def test_readonly_mount_refuses_writes(store, base):
    src_before = _tree(store, base)
    op = _op("for p in /src/data/keep /src/data/new; do echo x > $p && exit 9; done;"
             " rm /src/data/keep && exit 8; chmod 777 /src/data && exit 7; true",
             Mount("/src", input=1, readonly=True), n_inputs=2)
    [root] = exec_op.run(_ctx(store), op, [base, base])
    assert _tree(store, base) == src_before
    assert "/src" not in _tree(store, root)


def test_readonly_rootfs_refuses_writes(store, base):
    op = ExecOp(inputs=(Input("sha256:" + "0" * 64),), args=("sh", "-c", "touch /x || exit 5"),
                mounts=(Mount("/", input=0, output=-1, readonly=True),))
    with pytest.raises(SolveError, match="exit code: 5"):
        exec_op.run(_ctx(store), op, [base])
    op = ExecOp(inputs=(Input("sha256:" + "0" * 64), Input("sha256:" + "1" * 64)),
                args=("sh", "-c", "echo ok > /out/f"),
                mounts=(Mount("/", input=0, output=-1, readonly=True),
                        Mount("/out", input=1, output=0)))
    [out] = exec_op.run(_ctx(store), op, [base, None])
    assert _tree(store, out) == {"/f": "f 644 ok\n"}


def test_writable_mount_is_an_output_and_not_in_root(store, base):
    op = _op("echo hi > /out/hello; mkdir /out/d; echo r > /rootfile",
             Mount("/out", input=1, output=1), n_inputs=2)
    root, out = exec_op.run(_ctx(store), op, [base, None])
    assert _tree(store, out) == {"/hello": "f 644 hi\n", "/d": "d 755"}
    assert "/out" not in _tree(store, root)
    assert _tree(store, root)["/rootfile"] == "f 644 r\n"


def test_writable_mount_with_selector(store, base):
    op = _op("ls /sel > /listing; echo s > /sel/new",
             Mount("/sel", input=1, output=1, selector="/data"), n_inputs=2)
    root, out = exec_op.run(_ctx(store), op, [base, base])
    assert _tree(store, root)["/listing"] == "f 644 gone\nkeep\nmode\n"
    assert _tree(store, out)["/data/new"] == "f 644 s\n"
    assert "/new" not in _tree(store, out)


def test_missing_selector(store, base):
    op = _op("true", Mount("/sel", input=0, readonly=True, selector="/nope"))
    with pytest.raises(InputError, match="/nope"):
        exec_op.run(_ctx(store), op, [base])


def test_cache_mount_persists_and_is_in_no_output(store, base):
    cache = Mount("/cache", type=MOUNT_CACHE, cache_id="test-cache")
    [r1] = exec_op.run(_ctx(store), _op("echo 1 >> /cache/count; cat /cache/count > /seen",
                                        cache), [base])
    [r2] = exec_op.run(_ctx(store), _op("echo 2 >> /cache/count; cat /cache/count > /seen",
                                        cache), [base])
    assert _tree(store, r1)["/seen"] == "f 644 1\n"
    assert _tree(store, r2)["/seen"] == "f 644 1\n2\n"
    for r in (r1, r2):
        assert not any(p.startswith("/cache") for p in _tree(store, r))


def test_user_by_name_and_number(store, base):
    op = _op("id -u > /tmp-uid; id -g >> /tmp-uid; id -G >> /tmp-uid", user="app")
    with pytest.raises(SolveError):  # app cannot write to /
        exec_op.run(_ctx(store), op, [base])
    op = _op("id -u > /w/o; id -g >> /w/o; id -G >> /w/o; stat -c %u:%g /w >> /w/o",
             user="app", cwd="/w")
    [root] = exec_op.run(_ctx(store), op, [base])
    assert _tree(store, root)["/w/o"] == "f 644 1000\n1000\n1000 10\n1000:1000\n"
    op = _op("id -u > o; id -g >> o", user="1234:55", cwd="/u")
    [root] = exec_op.run(_ctx(store), op, [base])
    assert _tree(store, root)["/u/o"] == "f 644 1234\n55\n"
    with pytest.raises(InputError, match="unable to find user ghost"):
        exec_op.run(_ctx(store), _op("true", user="ghost"), [base])


def test_cwd_is_created_and_kept(store, base):
    [root] = exec_op.run(_ctx(store), _op("pwd > out", cwd="/a/b"), [base])
    assert _tree(store, root)["/a/b/out"] == "f 644 /a/b\n"


def test_env_and_hostname(store, base):
    op = _op('echo "$A $B" > /o; hostname >> /o', hostname="box")
    op = ExecOp(inputs=op.inputs, args=op.args, env=("A=1", "B=two"), hostname="box",
                mounts=op.mounts)
    [root] = exec_op.run(_ctx(store), op, [base])
    assert _tree(store, root)["/o"] == "f 644 1 two\nbox\n"


def test_cancelled_before_start(store, base):
    ctx = _ctx(store)
    ctx.cancelled.set()
    before = set(store.snapshot_ids())
    with pytest.raises(SolveCancelledError):
        exec_op.run(ctx, _op("true"), [base])
    assert set(store.snapshot_ids()) == before


def test_cancel_while_running(store, base):
    ctx = _ctx(store)
    threading.Timer(0.3, ctx.cancelled.set).start()
    before = set(store.snapshot_ids())
    with pytest.raises(SolveCancelledError):
        exec_op.run(ctx, _op("touch /x; sleep 30"), [base])
    assert set(store.snapshot_ids()) == before


def test_names():
    assert exec_op.name(_op("make")) == 'exec sh -c "make"'
    assert exec_op.name(ExecOp(inputs=(), args=("true",))) == "exec true"
    assert exec_op.name(ExecOp(inputs=(), args=("echo", "a b"))) == 'exec echo "a b"'


def _run_concurrently(store, base, ops):
    results, errors = [None] * len(ops), []

    def one(i):
        try:
            results[i] = exec_op.run(_ctx(store), ops[i], [base])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def _two_execs(script: str, cache: Mount) -> list[ExecOp]:
    """Two execs of `script` on one rootfs input, told apart by N=0 / N=1, with `cache`."""
    return [ExecOp(inputs=(Input("sha256:" + "0" * 64),), args=("sh", "-c", script),
                   env=(f"N={i}",), mounts=(Mount("/", input=0, output=0), cache))
            for i in range(2)]


def test_cache_mount_locked_serialises_execs(store, base):
    cache = Mount("/c", type=MOUNT_CACHE, cache_id="locked-cache", sharing="locked")
    ops = _two_execs("echo start$N >> /c/log; sleep 0.3; echo end$N >> /c/log", cache)
    _run_concurrently(store, base, ops)
    final = exec_op.run(_ctx(store), _op("cp /c/log /log", cache), [base])
    lines = _tree(store, final[0])["/log"].split(" ", 2)[2].split()
    assert sorted(lines) == ["end0", "end1", "start0", "start1"]
    assert lines[0][-1] == lines[1][-1] and lines[2][-1] == lines[3][-1]  # never interleaved


def test_cache_mount_private_gives_concurrent_execs_their_own_dir(store, base):
    cache = Mount("/c", type=MOUNT_CACHE, cache_id="private-cache", sharing="private")
    ops = _two_execs("echo $N > /c/mine$N; sleep 0.3; ls /c > /seen", cache)
    results = _run_concurrently(store, base, ops)
    for i, [root] in enumerate(results):
        assert _tree(store, root)["/seen"] == f"f 644 mine{i}\n"
    assert len({p.name for p in (Path(store.root) / "cache-mounts").glob("*/[0-9]")}) == 2


def test_unmounts_survive_concurrent_forks(store, base):
    """Other threads forking (runc for parallel execs) while a mutable with open fds is
    unmounted: the forked child holds copies of those fds until it execs (EBUSY)."""
    if store.kind != "overlayfs":
        pytest.skip("only overlay mounts can be busy")
    import subprocess

    stop = threading.Event()
    errors: list[str] = []

    def forker():
        while not stop.is_set():
            subprocess.run(["true"], close_fds=True)

    def worker():
        for _ in range(30):
            m = store.prepare(base)
            try:
                with m.mount() as p:
                    with os.scandir(Path(p) / "bin") as it:
                        list(it)
                m.discard()
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))
    forkers = [threading.Thread(target=forker) for _ in range(2)]
    workers = [threading.Thread(target=worker) for _ in range(3)]
    for t in forkers + workers:
        t.start()
    for t in workers:
        t.join(120)
    stop.set()
    for t in forkers:
        t.join(10)
    assert errors == []
