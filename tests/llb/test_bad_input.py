"""Definition.from_bytes on malformed and hostile bytes: always DefinitionError, one line."""

import msgpack
import pytest

import llb
from hostile import (SCRATCH, definition, digest, exec_op, file_op, inp, mkdir, mount, pack,
                     scratch_digest)
from programs import kitchen_sink

S = scratch_digest()


def rejects(data, match: str) -> llb.DefinitionError:
    with pytest.raises(llb.DefinitionError) as info:
        llb.Definition.from_bytes(data)
    text = str(info.value)
    assert "\n" not in text and text, text
    assert match in text, text
    return info.value


def test_valid_helper_definition_is_accepted():
    d = llb.Definition.from_bytes(definition(SCRATCH, file_op(S)))
    assert len(d.ops) == 2


def test_every_truncation_is_rejected():
    data = llb.scratch().file(llb.mkfile("/a", b"hello")).to_definition().to_bytes()
    for n in range(len(data)):
        with pytest.raises(llb.DefinitionError):
            llb.Definition.from_bytes(data[:n])


def test_trailing_bytes():
    rejects(definition(SCRATCH) + b"\x00", "trailing bytes")


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    ("text", "must be bytes"),
    (None, "must be bytes"),
    (b"\xc1", "not valid msgpack"),
    (b"\x91\x01", "must be a map"),
    (pack({"ops": []}), "missing field 'metadata' in definition"),
    (pack({"metadata": {}, "ops": [], "output": {}, "version": 1, "zz": 1}), "unknown field"),
    (pack({"version": 1, "ops": [], "output": {}, "metadata": {}}), "sorted"),
    (definition(SCRATCH, version=2), "unsupported definition version"),
    (definition(SCRATCH, version="1"), "definition version must be the integer 1, got a "
                                       "string ('1')"),
    (pack({"metadata": {}, "ops": {}, "output": {}, "version": 1}), "ops must be an array"),
    (pack({"metadata": {}, "ops": [], "output": {}, "version": 1}), "no ops"),
    (pack({"metadata": {}, "ops": [[S]], "output": {}, "version": 1}), "[digest, bytes] pair"),
    (pack({"metadata": {}, "ops": [[S, "str"]], "output": {}, "version": 1}), "pair"),
    (definition(SCRATCH, digests=["sha256:abc"]), "is not sha256:<64 hex digits>"),
    (definition(SCRATCH, digests=["md5:" + "0" * 64]), "is not sha256"),
    (definition(SCRATCH, digests=[S + "\n"]), "is not sha256:<64 hex digits>"),
    (definition(SCRATCH, digests=[S.upper().replace("SHA256", "sha256")]), "is not sha256"),
])
def test_bad_envelope(data, match):
    rejects(data, match)


def test_duplicate_op():
    blob = pack(SCRATCH)
    rejects(definition(blobs=[blob, blob]), "listed twice")


def test_op_bytes_not_msgpack_or_trailing():
    rejects(definition(b"\xc1"), "is not valid msgpack")
    rejects(definition(pack(SCRATCH) + b"\x01"), "trailing bytes")


@pytest.mark.parametrize("op, match", [
    ({**SCRATCH, "kind": "launch"}, "unknown kind 'launch'"),
    ({k: v for k, v in SCRATCH.items() if k != "kind"}, "missing field 'kind'"),
    ({**SCRATCH, "zzz": 1}, "unknown field 'zzz'"),
    ({k: v for k, v in SCRATCH.items() if k != "attrs"}, "missing field 'attrs'"),
    ({**SCRATCH, "identifier": 5}, "identifier: expected a string, got integer"),
    ({**SCRATCH, "include": "x"}, "include: expected an array, got string"),
    ({**SCRATCH, "include": [1]}, "include[0]: expected a string"),
    ({**SCRATCH, "attrs": [["a"]]}, "attrs[0]: expected 2 items"),
    ({**SCRATCH, "identifier": b"scratch"}, "expected a string, got bytes"),
    ({**SCRATCH, "identifier": None}, "got nil"),
    ([SCRATCH], "expected a map, got array"),
    ("scratch", "expected a map, got string"),
])
def test_bad_op_shapes(op, match):
    rejects(definition(op), match)


def test_wrong_field_types_in_nested_values():
    rejects(definition(SCRATCH, file_op(S, mkdir(mode="755"))), "actions[0].mode: expected an integer")
    rejects(definition(SCRATCH, file_op(S, mkdir(mode=1.5))), "got float")
    rejects(definition(SCRATCH, file_op(S, mkdir(mode=True))), "got bool")
    rejects(definition(SCRATCH, file_op(S, mkdir(parents=1))), "parents: expected a bool")
    rejects(definition(SCRATCH, file_op(S, {**mkdir(), "action": "chmod"})), "unknown action 'chmod'")
    rejects(definition(SCRATCH, exec_op(S, [mount(5, input=0, output=0)])), "mounts[0].dest")
    rejects(definition(SCRATCH, file_op(S, inputs=[{"digest": S}])), "inputs[0]: missing field 'index'")
    rejects(definition(SCRATCH, {"inputs": [inp(S)], "kind": "diff"}), "inputs: expected 2 items")
    ts = msgpack.Timestamp(1, 0)
    rejects(definition(SCRATCH, file_op(S, mkdir(created=ts))), "created: expected an integer")
    ext = msgpack.ExtType(5, b"x")
    rejects(definition(SCRATCH, file_op(S, mkdir(owner=ext))), "owner: expected a string")


def test_non_canonical_encodings():
    unsorted = {"kind": "source", "attrs": [], "exclude": [], "identifier": "scratch",
                "include": []}
    rejects(definition(unsorted), "not in sorted order")
    # a non-minimal integer: index 0 written as uint64
    d = file_op(S)
    blob = pack(d).replace(b"\xa5index\x00", b"\xa5index\xcf" + b"\x00" * 8)
    assert blob != pack(d)
    rejects(definition(SCRATCH, blob), "not canonically encoded")
    # the envelope itself must be canonical too
    good = definition(SCRATCH)
    bad = good.replace(b"\xa7version\x01", b"\xa7version\xcc\x01")
    assert bad != good
    rejects(bad, "not canonically encoded")


def test_missing_input():
    rejects(definition(file_op("sha256:" + "7" * 64)), "refers to missing input")


def test_cycles():
    a = "sha256:" + "a" * 64
    b = "sha256:" + "b" * 64
    self_loop = file_op(a)
    rejects(definition(self_loop, digests=[a]), "cycle")
    two = [file_op(b), file_op(a)]
    err = rejects(definition(*two, digests=[a, b]), "cycle")
    assert a in str(err) and b in str(err)


def test_listed_before_input_without_cycle():
    f = file_op(S)
    rejects(definition(f, SCRATCH, output=inp(digest(pack(f)))), "listed before its input")


def test_digest_does_not_match_bytes():
    rejects(definition(SCRATCH, digests=["sha256:" + "1" * 64]), "does not match")


def test_output_problems():
    rejects(definition(SCRATCH, output=inp("sha256:" + "3" * 64)), "is not one of its ops")
    rejects(definition(SCRATCH, output=inp(S, 1)), "output index 1 out of range")
    rejects(definition(SCRATCH, output={"digest": S}), "missing field 'index'")
    rejects(definition(SCRATCH, output=inp(S, -1)), "out of range")


def test_input_output_index_beyond_the_ops_outputs():
    ex = exec_op(S)
    e = digest(pack(ex))
    rejects(definition(SCRATCH, ex, file_op(e, inputs=[inp(e, 1)])), "which has 1")


def test_unreachable_op():
    other = file_op(S)
    rejects(definition(SCRATCH, other, output=inp(S)), "does not lead to the output")


def test_metadata_problems():
    ok = {"description": "", "ignore_cache": False, "progress_name": "x"}
    assert llb.Definition.from_bytes(definition(SCRATCH, metadata={S: ok})).metadata[S].progress_name == "x"
    rejects(definition(SCRATCH, metadata={"sha256:" + "4" * 64: ok}), "metadata for unknown op")
    rejects(definition(SCRATCH, metadata={S: {**ok, "progress_name": ""}}), "is empty")
    rejects(definition(SCRATCH, metadata={S: {**ok, "ignore_cache": 1}}), "ignore_cache: expected a bool")
    rejects(definition(SCRATCH, metadata={S: {**ok, "color": "red"}}), "unknown field 'color'")
    rejects(definition(SCRATCH, metadata=[1]), "metadata must be a map")


def test_absurd_sizes():
    # headers that claim far more items or bytes than there are
    rejects(b"\xdd\xff\xff\xff\xff", "not valid msgpack")
    rejects(b"\xdb\xff\xff\xff\xff" + b"a" * 10, "not valid msgpack")
    rejects(b"\xdf\xff\xff\xff\xff", "not valid msgpack")
    rejects(b"\x91" * 100_000, "")  # deep nesting
    rejects(definition(b"\xc6\xff\xff\xff\xff"), "not valid msgpack")
    rejects(definition(SCRATCH, file_op(S, mkdir(created=2**64 - 1))), "created")


def test_too_many_ops(monkeypatch):
    import llb.definition as definition_module
    monkeypatch.setattr(definition_module, "MAX_OPS", 2)
    data = llb.merge([llb.scratch().file(llb.mkfile("/a", b"")),
                      llb.scratch().file(llb.mkfile("/b", b""))]).to_definition().to_bytes()
    rejects(data, "limit 2")


@pytest.mark.parametrize("op, match", [
    (file_op(S, mkdir(mode=0o10000)), "mode 4096 out of range"),
    (file_op(S, mkdir(mode=-1)), "out of range"),
    (file_op(S, mkdir(path="a")), "must be an absolute, clean path"),
    (file_op(S, mkdir(path="/a/../b")), "absolute, clean"),
    (file_op(S, mkdir(path="/a//b")), "absolute, clean"),
    (file_op(S, mkdir(path="/a\x00")), "NUL"),
    (file_op(S, mkdir(owner="a:b:c")), "user[:group]"),
    (file_op(S, mkdir(owner="a b")), "user[:group]"),
    (file_op(S, mkdir(created=-2)), "created -2 out of range"),
    (file_op(S, {"action": "mkfile", "created": -1, "data": b"", "mode": 0o644, "owner": "",
                 "path": "/"}), "cannot create a file at /"),
    (file_op(S, {"action": "rm", "allow_not_found": False, "allow_wildcard": False,
                 "path": "rel"}), "absolute"),
    ({"actions": [], "inputs": [inp(S)], "kind": "file"}, "no actions"),
    ({"actions": [mkdir()], "inputs": [], "kind": "file"}, "base input"),
    ({"actions": [mkdir()], "inputs": [inp(S), inp(S)], "kind": "file"}, "not read by any copy"),
    (exec_op(S, args=[]), "no arguments"),
    (exec_op(S, env=["NOEQUALS"]), "KEY=value"),
    (exec_op(S, env=["=x"]), "KEY=value"),
    (exec_op(S, cwd="work"), "cwd"),
    (exec_op(S, network="bridge"), "network"),
    (exec_op(S, hostname="bad host"), "hostname"),
    (exec_op(S, user="a:b:c"), "user"),
    (exec_op(S, mounts=[]), "no mounts"),
    (exec_op(S, mounts=[mount("/x", input=0, output=0)]), "rootfs"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("rel", type="tmpfs")]), "dest"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/t", type="tmpfs"),
                        mount("/t", type="tmpfs")]), "appears twice"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/", input=0, output=1)]), "only mounts[0]"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/c", type="cache")]), "needs an id"),
    (exec_op(S, mounts=[mount("/", input=0, output=0),
                        mount("/c", type="cache", cache_id="x", sharing="all")]), "sharing"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/c", type="nfs")]), "mount type"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/t", type="tmpfs", input=0)]),
     "take no input"),
    (exec_op(S, mounts=[mount("/", input=0, output=0), mount("/t", type="tmpfs", tmpfs_size=-1)]),
     "size"),
    (exec_op(S, mounts=[mount("/", input=0, output=0),
                        mount("/t", type="tmpfs", cache_id="x")]), "no cache id"),
    (exec_op(S, mounts=[mount("/", input=3, output=0)]), "input 3 out of range"),
    (exec_op(S, mounts=[mount("/", input=0, output=1)]), "output must be 0"),
    (exec_op(S, mounts=[mount("/", input=0, output=0, readonly=True)]), "output must be -1"),
    (exec_op(S, mounts=[mount("/", input=0, output=0, cache_id="x")]), "only apply to cache"),
    (exec_op(S, mounts=[mount("/", input=0, output=0, selector="rel")]), "selector"),
    (exec_op(S, inputs=[inp(S), inp(S)]), "not mounted"),
    ({"inputs": [], "kind": "merge"}, "no inputs"),
    ({**SCRATCH, "identifier": "git://x"}, "unknown source identifier"),
    ({**SCRATCH, "identifier": "docker-image://busybox"}, "not normalised"),
    ({**SCRATCH, "identifier": "docker-image://Bad"}, "invalid image reference"),
    ({**SCRATCH, "identifier": "oci-layout:///l"}, "needs ':<tag>' or '@<digest>'"),
    ({**SCRATCH, "identifier": "oci-layout://rel/x:t"}, "oci-layout path"),  # a bare name is an --oci-layout name
    ({**SCRATCH, "identifier": "oci-layout:///l@sha256:zz"}, "oci-layout digest"),
    ({**SCRATCH, "identifier": "local://a/b"}, "local name"),
    ({**SCRATCH, "include": ["x"]}, "only apply to local sources"),
    ({**SCRATCH, "identifier": "local://c", "include": [""]}, "empty pattern"),
    ({**SCRATCH, "attrs": [["b", "1"], ["a", "2"]]}, "sorted by key"),
    ({**SCRATCH, "attrs": [["Bad Key", "1"]]}, "attr key"),
])
def test_bad_values(op, match):
    rejects(definition(SCRATCH, op) if op.get("kind") != "source" else definition(op), match)


def test_copy_value_checks():
    copy = {"action": "copy", "allow_empty_wildcard": False, "allow_wildcard": False,
            "always_replace_existing": False, "copy_dir_contents_only": False,
            "create_dest_path": False, "created": -1, "dest": "/d/", "exclude": [],
            "follow_symlinks": False, "include": [], "mode": -1, "owner": "", "source": 0,
            "src": "/s"}
    assert llb.Definition.from_bytes(definition(SCRATCH, file_op(S, copy)))
    rejects(definition(SCRATCH, file_op(S, {**copy, "source": 1})), "source input 1 out of range")
    rejects(definition(SCRATCH, file_op(S, {**copy, "mode": -2})), "mode -2")
    rejects(definition(SCRATCH, file_op(S, {**copy, "dest": "/d//"})), "dest")
    rejects(definition(SCRATCH, file_op(S, {**copy, "src": "/s/"})), "src")
    rejects(definition(SCRATCH, file_op(S, {**copy, "include": [""]})), "empty pattern")


def test_error_names_the_vertex():
    op = file_op(S, mkdir(mode=0o10000))
    err = rejects(definition(SCRATCH, op), "mode")
    assert err.vertex == digest(pack(op))


def test_kitchen_sink_bytes_with_each_byte_flipped_never_crash():
    data = kitchen_sink().to_definition().to_bytes()
    for i in range(0, len(data), max(1, len(data) // 400)):
        mutated = data[:i] + bytes([data[i] ^ 0x41]) + data[i + 1:]
        try:
            back = llb.Definition.from_bytes(mutated)
        except llb.DefinitionError:
            continue
        assert back.to_bytes() == mutated
