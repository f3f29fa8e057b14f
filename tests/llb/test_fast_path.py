"""The DSL's fast path (file actions finished when written, nodes assembled from their wire
form) builds exactly what the checked path builds: the same ops, bytes and digests, and the
same errors at the same moment (State.file), for every kind of value."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llb
from llb import codec
from llb.actions import created_ns, owner_str
from llb.paths import resolve

names = st.sampled_from(["a", "b", "c.txt", "..", ".", "", "x y", "ü", ".hidden"])
paths = st.lists(names, min_size=1, max_size=4).map("/".join) | \
    st.lists(names, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
modes = st.integers(0, 0o7777)
# mostly the defaults: a chain takes the fast path only when every action in it can
owners = st.sampled_from([None] * 8 + [0, 1000, "root", "1:2", ("user", "grp")])
created = st.sampled_from([None] * 4) | st.integers(0, 2**63 - 1)
datas = st.binary(max_size=20) | st.text(max_size=5)


@st.composite
def chains(draw):
    """(FileActions, the actions the checked path builds from the same calls)."""
    chain = llb.FileActions()
    expected = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["mkdir", "mkfile", "rm"]))
        path = draw(paths)
        where = resolve("/", path)
        if not path.strip("/") or where == "/":  # refused alike either way (tested below)
            continue
        if kind == "mkdir":
            mode, parents, owner, when = draw(modes), draw(st.booleans()), draw(owners), draw(created)
            chain = chain.mkdir(path, mode, parents=parents, owner=owner, created=when)
            expected.append(llb.Mkdir(path=where, mode=mode, parents=parents,
                                      owner=owner_str(owner), created=created_ns(when)))
        elif kind == "mkfile":
            data, mode, owner, when = draw(datas), draw(modes), draw(owners), draw(created)
            chain = chain.mkfile(path, data, mode, owner=owner, created=when)
            expected.append(llb.Mkfile(path=where, data=data.encode() if isinstance(data, str)
                                       else data, mode=mode, owner=owner_str(owner),
                                       created=created_ns(when)))
        else:
            anf, awc = draw(st.booleans()), draw(st.booleans())
            chain = chain.rm(path, allow_not_found=anf, allow_wildcard=awc)
            expected.append(llb.Rm(path=where, allow_not_found=anf, allow_wildcard=awc))
    return chain, expected


@settings(max_examples=300, deadline=None)
@given(chains())
def test_fast_and_checked_paths_build_the_same_op(case) -> None:
    chain, expected = case
    if not expected:
        return
    base = llb.scratch().file(llb.mkdir("/base"))
    state = base.file(chain)
    op = llb.FileOp(inputs=(base.output,), actions=tuple(expected))
    assert state.op == op
    assert repr(state.op) == repr(op)
    assert state.output.digest == llb.op_digest(op)
    definition = state.to_definition()
    assert definition.op_bytes(state.output.digest) == codec.encode_op(op)
    again = llb.Definition.from_bytes(definition.to_bytes())
    assert again.ops[state.output.digest] == op


@pytest.mark.parametrize("chain, actions", [
    (lambda: llb.mkfile("/a", b"x"), [llb.Mkfile(path="/a", data=b"x")]),
    (lambda: llb.mkfile("/a/b", "text", 0o600), [llb.Mkfile(path="/a/b", data=b"text", mode=0o600)]),
    (lambda: llb.mkdir("/d", 0o700, parents=True), [llb.Mkdir(path="/d", mode=0o700, parents=True)]),
    (lambda: llb.mkdir("/"), [llb.Mkdir(path="/")]),
    (lambda: llb.rm("/x", allow_not_found=True, allow_wildcard=True),
     [llb.Rm(path="/x", allow_not_found=True, allow_wildcard=True)]),
    (lambda: llb.mkdir("/d").mkfile("/d/.f", b"").rm("/d/g"),
     [llb.Mkdir(path="/d"), llb.Mkfile(path="/d/.f", data=b""), llb.Rm(path="/d/g")]),
])
def test_a_chain_of_finished_actions_only(chain, actions) -> None:
    state = llb.scratch().file(chain())
    op = llb.FileOp(inputs=(llb.scratch().output,), actions=tuple(actions))
    assert state.op == op and state.output.digest == llb.op_digest(op)
    assert state.to_definition().op_bytes(state.output.digest) == codec.encode_op(op)


def test_a_finished_action_is_used_as_is_beside_one_built_later() -> None:
    # an absolute clean path is finished when written; a relative one waits for the state's
    # working directory; both kinds in one chain
    chain = llb.mkfile("/abs", b"1").mkfile("rel", b"2").mkdir("/d").rm("d/x")
    state = llb.scratch().file(llb.mkdir("/w")).cwd("/w").file(chain)
    assert [a.path for a in state.op.actions] == ["/abs", "/w/rel", "/d", "/w/d/x"]
    op = llb.FileOp(inputs=state.op.inputs, actions=(
        llb.Mkfile(path="/abs", data=b"1"), llb.Mkfile(path="/w/rel", data=b"2"),
        llb.Mkdir(path="/d"), llb.Rm(path="/w/d/x")))
    assert state.op == op and state.output.digest == llb.op_digest(op)


@pytest.mark.parametrize("chain, message", [
    (lambda: llb.mkfile("/", b"x"), "cannot create a file at /"),
    (lambda: llb.mkfile("/" + "a" * (1 << 16), b"x"), "characters long"),
    (lambda: llb.mkdir("/" + "a" * (1 << 16)), "characters long"),
    (lambda: llb.rm("/" + "a" * (1 << 16)), "characters long"),
    (lambda: llb.mkfile("/a", b"x", owner="bad owner"), "must be 'user\\[:group\\]'"),
    (lambda: llb.mkdir("/a", owner="a:b:c"), "must be 'user\\[:group\\]'"),
    (lambda: llb.mkfile("/a", b"x", created=1 << 63), "out of range"),
    (lambda: llb.mkfile("/a/\x00", b"x"), "NUL"),
])
def test_values_validation_refuses_are_refused_by_file(chain, message) -> None:
    actions = chain()  # writing the action is fine: the op is checked when it is built
    with pytest.raises(llb.DefinitionError, match=message):
        llb.scratch().file(actions)


def test_a_bytes_subclass_or_str_subclass_still_fails_the_type_check() -> None:
    class B(bytes):
        pass

    class S(str):
        pass

    with pytest.raises(llb.DefinitionError, match="expected bytes"):
        llb.scratch().file(llb.mkfile("/a", B(b"x")))
    state = llb.scratch().file(llb.mkfile(S("/a"), b"x"))  # a path is resolved to a str
    assert state.op.actions[0].path == "/a" and type(state.op.actions[0].path) is str


def test_chains_share_their_prefix_and_stay_immutable() -> None:
    base = llb.mkdir("/d")
    a, b = base.mkfile("/d/a", b"a"), base.mkfile("/d/b", b"b")
    assert (len(base), len(a), len(b)) == (1, 2, 2)
    assert [x.op.path for x in a.items] == ["/d", "/d/a"]
    assert [x.op.path for x in b.items] == ["/d", "/d/b"]
    assert repr(b) == "FileActions(mkdir /d, mkfile /d/b)"
    long = llb.FileActions()
    for i in range(20000):  # linear, not quadratic, in the chain's length
        long = long.mkfile(f"/f{i}", b"")
    assert len(long) == 20000 and long.items[-1].op.path == "/f19999"


@pytest.mark.parametrize("odd, where", [
    ("/d/.hidden", "/d/.hidden"),  # clean, though it holds "/."
    ("rel", "/w/rel"),  # relative: resolved against the working directory
    ("/d//x/", "/d/x"),  # not clean: cleaned
    ("/d/./y/../z", "/d/z"),
])
def test_one_odd_path_among_many_clean_ones(odd, where) -> None:
    # the chain's paths are checked together first, then one by one when that check fails
    chain = llb.mkdir("/d")
    expected = [llb.Mkdir(path="/d")]
    for i in range(50):
        chain = chain.mkfile(f"/d/f{i}", b"x")
        expected.append(llb.Mkfile(path=f"/d/f{i}", data=b"x"))
        if i == 25:
            chain = chain.mkfile(odd, b"odd").mkdir("/").rm("/d/f0")
            expected += [llb.Mkfile(path=where, data=b"odd"), llb.Mkdir(path="/"),
                         llb.Rm(path="/d/f0")]
    base = llb.scratch().file(llb.mkdir("/w")).cwd("/w")
    state = base.file(chain)
    op = llb.FileOp(inputs=(base.output,), actions=tuple(expected))
    assert state.op == op and state.output.digest == llb.op_digest(op)
    assert state.to_definition().op_bytes(state.output.digest) == codec.encode_op(op)


@pytest.mark.parametrize("odd, message", [
    ("/d/a\x00b", "NUL"),
    ("/", "cannot create a file at /"),
    ("/" + "a" * (1 << 16), "characters long"),
])
def test_one_refused_path_among_many_clean_ones(odd, message) -> None:
    chain = llb.mkdir("/d")
    for i in range(50):
        chain = chain.mkfile(f"/d/f{i}", b"x")
    chain = chain.mkfile(odd, b"odd").mkfile("/d/last", b"")
    with pytest.raises(llb.DefinitionError, match=message):
        llb.scratch().file(chain)
