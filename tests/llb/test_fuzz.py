"""Property tests: random programs round-trip exactly; random or mutated bytes only ever
raise DefinitionError, and whatever is accepted re-serialises to the very same bytes."""

import os

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llb
from programs import kitchen_sink

# LLB_FUZZ_EXAMPLES=5000 for a longer local run
FUZZ = settings(max_examples=int(os.environ.get("LLB_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.sampled_from(["a", "b", "c.txt", "..", ".", "dir", "x y", "ü"])
paths = st.lists(names, min_size=1, max_size=4).map("/".join) | \
    st.lists(names, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
modes = st.integers(0, 0o7777)
owners = st.sampled_from([None, 0, 1000, "root", "1:2", ("user", "grp")])
created = st.none() | st.integers(0, 2**63 - 1)


def _actions(draw, pool):
    chain = None
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["mkdir", "mkfile", "rm", "copy"]))
        start = chain if chain is not None else llb.FileActions()
        if kind == "mkdir":
            chain = start.mkdir(draw(paths), draw(modes), parents=draw(st.booleans()),
                                owner=draw(owners), created=draw(created))
        elif kind == "mkfile":
            chain = start.mkfile(draw(paths), draw(st.binary(max_size=20)), draw(modes),
                                 owner=draw(owners), created=draw(created))
        elif kind == "rm":
            chain = start.rm(draw(paths), allow_not_found=draw(st.booleans()),
                             allow_wildcard=draw(st.booleans()))
        else:
            chain = start.copy(draw(st.sampled_from(pool)), draw(paths), draw(paths),
                               mode=draw(st.none() | modes), owner=draw(owners),
                               follow_symlinks=draw(st.booleans()),
                               create_dest_path=draw(st.booleans()),
                               include=draw(st.lists(st.sampled_from(["*.py", "a/**"]), max_size=2)))
    return chain


@st.composite
def programs(draw):
    pool = [llb.scratch()]
    for _ in range(draw(st.integers(1, 8))):
        step = draw(st.sampled_from(["image", "local", "oci", "file", "run", "merge", "diff",
                                     "env"]))
        pick = st.sampled_from(pool)
        if step == "image":
            s = llb.image(draw(st.sampled_from(["busybox", "alpine:3", "ghcr.io/a/b:c"])))
        elif step == "local":
            s = llb.local(draw(st.sampled_from(["ctx", "src"])),
                          include=draw(st.lists(st.sampled_from(["*.c", "src/**"]), max_size=2)))
        elif step == "oci":
            s = llb.oci_layout("/layouts/x", tag=draw(st.sampled_from(["v1", "latest"])))
        elif step == "file":
            actions = _actions(draw, pool)
            try:
                s = draw(pick).file(actions, name=draw(st.sampled_from(["", "f"])))
            except llb.DefinitionError as e:  # mkfile of a path that cleans to "/"
                assert "cannot create a file at /" in str(e)
                continue
        elif step == "run":
            mounts = []
            for dest in draw(st.lists(st.sampled_from(["/m", "/n", "/o/p"]), unique=True,
                                      max_size=3)):
                which = draw(st.sampled_from(["bind", "ro", "cache", "tmpfs"]))
                if which == "bind":
                    mounts.append(llb.mount(dest, draw(pick)))
                elif which == "ro":
                    mounts.append(llb.mount(dest, draw(pick), readonly=True))
                elif which == "cache":
                    mounts.append(llb.cache_mount(dest, id="c", sharing=draw(
                        st.sampled_from(["shared", "private", "locked"]))))
                else:
                    mounts.append(llb.tmpfs(dest, size=draw(st.integers(0, 1 << 30))))
            ex = draw(pick).run(draw(st.lists(st.sampled_from(["sh", "-c", "echo hi", "x"]),
                                              min_size=1, max_size=3)), mounts=mounts,
                                ignore_cache=draw(st.booleans()))
            s = ex.root()
            for m in mounts:
                if m.type == "bind" and not m.readonly:
                    pool.append(ex.get_mount(m.dest))
        elif step == "merge":
            s = llb.merge(draw(st.lists(pick, max_size=4)))
        elif step == "diff":
            s = llb.diff(draw(pick), draw(pick))
        else:
            s = draw(pick).env("K", draw(st.sampled_from(["1", "2"]))).cwd(draw(paths))
        pool.append(s)
    return draw(st.sampled_from(pool))


@FUZZ
@given(programs())
def test_random_programs_round_trip(state):
    d = state.to_definition()
    data = d.to_bytes()
    back = llb.Definition.from_bytes(data)
    assert back == d and back.to_bytes() == data
    for digest in back.ops:
        assert llb.op_digest(back.ops[digest]) == digest
    for op in back.ops.values():  # paths are always absolute and clean
        for a in getattr(op, "actions", ()):
            for p in (getattr(a, "path", "/"), getattr(a, "src", "/"), getattr(a, "dest", "/")):
                assert p.startswith("/") and ".." not in p.split("/") and "//" not in p


def _accepts_exactly(data: bytes) -> None:
    try:
        back = llb.Definition.from_bytes(data)
    except llb.DefinitionError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert back.to_bytes() == data


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(data):
    _accepts_exactly(data)


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@FUZZ
@given(wire_values)
def test_random_msgpack_values(value):
    _accepts_exactly(msgpack.packb(value, use_bin_type=True))


_SINK = kitchen_sink().to_definition().to_bytes()


@FUZZ
@given(st.data())
def test_mutated_definitions(data):
    blob = bytearray(_SINK)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        how = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if how == "flip":
            blob[i] ^= data.draw(st.integers(1, 255))
        elif how == "insert":
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del blob[i:i + data.draw(st.integers(1, 8))]
        else:
            del blob[i:]
        if not blob:
            break
    _accepts_exactly(bytes(blob))


def _replace_somewhere(value, replacement, choice):
    """A copy of a wire structure with one nested value (chosen by `choice`) replaced."""
    slots = []

    def walk(v, setter):
        slots.append(setter)
        if isinstance(v, dict):
            for k in list(v):
                walk(v[k], lambda new, v=v, k=k: v.__setitem__(k, new))
        elif isinstance(v, list):
            for j in range(len(v)):
                walk(v[j], lambda new, v=v, j=j: v.__setitem__(j, new))
    root = [value]
    walk(value, lambda new: root.__setitem__(0, new))
    slots[choice % len(slots)](replacement)
    return root[0]


@FUZZ
@given(st.integers(0, 10_000), wire_values)
def test_ops_with_a_value_swapped(choice, replacement):
    """Decode each op of a valid definition, swap one nested value for a random one, re-pack
    with a correct digest (so only the value checks can catch it)."""
    import hashlib
    top = msgpack.unpackb(_SINK)
    k = choice % len(top["ops"])
    raw = msgpack.unpackb(top["ops"][k][1])
    mutated = _replace_somewhere(raw, replacement, choice // len(top["ops"]))
    blob = msgpack.packb(mutated, use_bin_type=True)
    top["ops"][k] = ["sha256:" + hashlib.sha256(blob).hexdigest(), blob]
    _accepts_exactly(msgpack.packb(top, use_bin_type=True))
