"""Options of llb's DSL that llbjson cannot express, checked against BuildKit v0.11.6's proto
semantics (the fields client/llb fills for the same option), and llb's choices where BuildKit
has no equivalent."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import llb
from llb.codec import digest_of
from llb.pb import UnsupportedError, decode, encode, host_platform, ops_pb2 as pb


def _ops(state: llb.State) -> tuple[list[pb.Op], pb.Definition]:
    encoded = encode(state.to_definition(), local_unique="U")
    ops = []
    for data in getattr(encoded.message, "def")[:-1]:
        op = pb.Op()
        op.ParseFromString(data)
        ops.append(op)
    return ops, encoded.message


def _only(state: llb.State, kind: str) -> pb.Op:
    """The op of `kind` that produces `state` (the last of that kind, definition order)."""
    found = [op for op in _ops(state)[0] if op.WhichOneof("op") == kind]
    assert found
    return found[-1]


def _roundtrip(state: llb.State) -> None:
    """Reading the BuildKit bytes back gives the same llb ops."""
    definition = state.to_definition()
    assert dict(decode(encode(definition).data).definition.ops) == dict(definition.ops)


def test_owner_by_id_and_by_name_as_go_with_user():
    # llb.WithUser("1000:50") marshals ids; names are looked up in the base input (index 0
    # here); "root" is id 0 (Go's parseUID)
    base = llb.image("busybox")
    state = base.file(llb.mkdir("/a", owner="1000:50").mkfile("/b", b"", owner="app:staff")
                      .copy(llb.local("c"), "/x", "/x", owner="root"))
    actions = _only(state, "file").file.actions
    assert actions[0].mkdir.owner.user.byID == 1000
    assert actions[0].mkdir.owner.group.byID == 50
    assert actions[1].mkfile.owner.user.byName.name == "app"
    assert actions[1].mkfile.owner.user.byName.input == 0
    assert actions[1].mkfile.owner.group.byName.name == "staff"
    assert actions[2].copy.owner.user.HasField("byID") and actions[2].copy.owner.user.byID == 0
    assert not actions[2].copy.owner.HasField("group")
    _roundtrip(base.file(llb.mkdir("/a", owner="1000:50").mkfile("/b", b"", owner="app:staff")))


def test_owner_name_on_scratch_looks_up_input_minus_one():
    action = _only(llb.scratch().file(llb.mkdir("/a", owner="app")), "file").file.actions[0]
    assert action.mkdir.owner.user.byName.input == -1


def test_created_is_timestamp_nanoseconds_and_unset_is_minus_one():
    when = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    state = llb.scratch().file(llb.mkdir("/a", created=when).mkfile("/a/f", b"x")
                               .copy(llb.local("c"), "/x", "/y", created=when))
    actions = _only(state, "file").file.actions
    assert actions[0].mkdir.timestamp == int(when.timestamp()) * 10**9
    assert actions[1].mkfile.timestamp == -1
    assert actions[2].copy.timestamp == int(when.timestamp()) * 10**9


def test_copy_flags_and_patterns_map_one_to_one():
    state = llb.scratch().file(llb.copy(
        llb.local("c"), "/src/*", "/dst/", mode=0o640, follow_symlinks=True,
        copy_dir_contents_only=True, create_dest_path=True, allow_wildcard=True,
        allow_empty_wildcard=True, include=["*.py"], exclude=["test_*"]))
    op, = [op for op in _ops(state)[0] if op.WhichOneof("op") == "file"]
    c = op.file.actions[0].copy
    assert (c.src, c.dest, c.mode) == ("/src/*", "/dst/", 0o640)
    assert c.followSymlink and c.dirCopyContents and c.createDestPath
    assert c.allowWildcard and c.allowEmptyWildcard and not c.attemptUnpackDockerCompatibility
    assert list(c.include_patterns) == ["*.py"] and list(c.exclude_patterns) == ["test_*"]
    assert op.file.actions[0].secondaryInput == 0 and op.file.actions[0].input == -1
    _, message = _ops(state)
    assert message.metadata[digest_of(op.SerializeToString(deterministic=True))].caps[
        "file.copy.includeexcludepatterns"]


def test_copy_mode_unset_is_minus_one():
    c = _only(llb.scratch().file(llb.copy(llb.local("c"), "/a", "/b")), "file").file.actions[0]
    assert c.copy.mode == -1


def test_always_replace_existing_is_not_in_buildkit_0_11():
    state = llb.scratch().file(llb.copy(llb.local("c"), "/a", "/b", always_replace_existing=True))
    with pytest.raises(UnsupportedError, match="always_replace_existing"):
        encode(state.to_definition())


def test_rm_wildcard():
    rm = _only(_hello().file(llb.rm("/h*", allow_wildcard=True)), "file").file.actions[0].rm
    assert rm.allowWildcard and not rm.allowNotFound


def test_special_mode_bits_are_kept():
    # the Go client masks modes with 0777 (it cannot express them); llb keeps them
    action = _only(llb.scratch().file(llb.mkdir("/tmp", 0o1777)), "file").file.actions[0]
    assert action.mkdir.mode == 0o1777


def test_local_include_exclude_as_go_json():
    # llb.IncludePatterns/ExcludePatterns: attrs hold Go's json.Marshal of the list (HTML
    # characters escaped), with their caps
    state = llb.local("ctx", include=["src/**", "a<b>&c"], exclude=["**/__pycache__"])
    op, message = _ops(state)[0][0], _ops(state)[1]
    attrs = dict(op.source.attrs)
    assert attrs["local.includepattern"] == '["src/**","a\\u003cb\\u003e\\u0026c"]'
    assert json.loads(attrs["local.excludepatterns"]) == ["**/__pycache__"]
    assert attrs["local.unique"] == "U"
    caps = message.metadata[digest_of(op.SerializeToString(deterministic=True))].caps
    assert set(caps) == {"source.local", "source.local.unique",
                         "source.local.includepatterns", "source.local.excludepatterns"}
    assert not op.HasField("platform")  # local sources name no platform in the Go client
    _roundtrip(state)


def test_local_unique_is_deterministic_by_default():
    state = llb.scratch().file(llb.copy(llb.local("ctx"), "/a", "/a"))
    assert encode(state.to_definition()).data == encode(state.to_definition()).data
    other = llb.scratch().file(llb.copy(llb.local("ctx"), "/b", "/b"))
    unique = [dict(op.source.attrs)["local.unique"] for s in (state, other)
              for op in _ops_default(s) if op.WhichOneof("op") == "source"]
    assert unique[0] != unique[1]


def _ops_default(state):
    out = []
    for data in getattr(encode(state.to_definition()).message, "def")[:-1]:
        op = pb.Op()
        op.ParseFromString(data)
        out.append(op)
    return out


def test_exec_readonly_rootfs_network_hostname_selector_tmpfs_size():
    base = llb.image("busybox")
    ex = base.run(["true"], readonly_rootfs=True, network="host", hostname="builder",
                  mounts=[llb.mount("/sub", llb.local("c"), selector="/deep/dir"),
                          llb.tmpfs("/t", size=1 << 20)])
    op = _only(ex.get_mount("/sub"), "exec")
    root, sub, tmp = op.exec.mounts
    assert (root.dest, root.readonly, root.output, root.input) == ("/", True, -1, 0)
    assert (sub.selector, sub.output) == ("/deep/dir", 0)
    assert tmp.mountType == pb.TMPFS and tmp.TmpfsOpt.size == 1 << 20
    assert op.exec.network == pb.HOST and op.exec.meta.hostname == "builder"
    _, message = _ops(ex.get_mount("/sub"))
    caps = set(message.metadata[digest_of(op.SerializeToString(deterministic=True))].caps)
    assert {"exec.meta.network", "exec.mount.selector", "exec.mount.tmpfs.size",
            "exec.mount.bind", "exec.meta.base", "exec.mount.tmpfs"} == caps
    _roundtrip(ex.get_mount("/sub"))


def test_default_network_is_buildkits_sandbox():
    # llb's default "none" is written as the Go client's default (UNSET: the sandbox)
    op = _only(llb.image("busybox").run("true").root(), "exec")
    assert op.exec.network == pb.UNSET
    assert op.exec.meta.removeMountStubsRecursive


def test_default_path_is_left_to_buildkitd():
    # the DSL appends the default PATH when a state sets none; the Go client leaves it out
    # and buildkitd adds the same default. Corner: a program that sets PATH to exactly that
    # default as its last variable gets a digest different from the Go client's.
    op = _only(llb.image("busybox").env("A", "1").run("true").root(), "exec")
    assert list(op.exec.meta.env) == ["A=1"]
    explicit = _only(llb.image("busybox").env("PATH", "/bin").run("true").root(), "exec")
    assert list(explicit.exec.meta.env) == ["PATH=/bin"]


def test_description_and_ignore_cache_are_metadata():
    state = _hello().file(llb.mkfile("/x", b"x"), description="why", ignore_cache=True)
    ops, message = _ops(state)
    md = message.metadata[digest_of(ops[-1].SerializeToString(deterministic=True))]
    assert md.description["llb.description"] == "why" and md.ignore_cache
    end = message.metadata[digest_of(getattr(message, "def")[-1])]
    assert set(end.caps) == {"constraints", "platform", "meta.description", "meta.ignorecache"}
    back = decode(message.SerializeToString())
    assert back.definition.metadata == state.to_definition().metadata


def test_platform_is_the_hosts():
    op = _only(_hello(), "file")
    assert (op.platform.OS, op.platform.Architecture) == host_platform()


DIGEST = "sha256:" + "ab" * 32


def test_oci_layout_sources_are_read_from_a_client_store_by_digest():
    named = encode(llb.oci_layout("lay", digest=DIGEST).to_definition())
    op = _source(named)
    assert op.source.identifier == f"oci-layout://llb/layout@{DIGEST}"
    assert dict(op.source.attrs) == {"oci.store": "lay"}
    assert named.layouts == {"lay": "lay"}
    assert named.message.metadata[named.ops[0]].caps["source.ocilayout"]
    assert (op.platform.OS, op.platform.Architecture) == host_platform()
    by_path = encode(llb.oci_layout("/tmp/layout", digest=DIGEST).to_definition())
    [(store, where)] = by_path.layouts.items()
    assert where == "/tmp/layout" and store.startswith("layout-") and len(store) == 23
    assert dict(_source(by_path).source.attrs) == {"oci.store": store}


def test_oci_layout_by_tag_needs_a_pin():
    state = llb.oci_layout("/tmp/layout", tag="v1")
    with pytest.raises(UnsupportedError, match="reads an OCI layout by digest only"):
        encode(state.to_definition())
    pinned = encode(state.to_definition(),
                    layout_pins={"oci-layout:///tmp/layout:v1": DIGEST})
    assert _source(pinned).source.identifier == f"oci-layout://llb/layout@{DIGEST}"


def _source(encoded) -> pb.Op:
    op = pb.Op()
    op.ParseFromString(getattr(encoded.message, "def")[0])
    return op


def _hello() -> llb.State:
    return llb.scratch().file(llb.mkdir("/hello").mkfile("/hello/world.txt", b"hi\n"))
