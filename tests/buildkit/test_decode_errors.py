"""Reading BuildKit definitions llb cannot run as buildkitd would: one clear error naming
the field, op or option (UnsupportedError), or the malformation (DefinitionError)."""

from __future__ import annotations

import pytest

from llb.codec import digest_of
from llb.errors import DefinitionError
from llb.pb import UnsupportedError, decode, ops_pb2 as pb


def _definition(*ops: pb.Op, index: int = 0) -> bytes:
    """A definition of `ops` (inputs first) whose result is the last op's output `index`."""
    d = pb.Definition()
    for op in ops:
        getattr(d, "def").append(op.SerializeToString(deterministic=True))
    last = digest_of(getattr(d, "def")[-1])
    getattr(d, "def").append(pb.Op(inputs=[pb.Input(digest=last, index=index)])
                             .SerializeToString(deterministic=True))
    return d.SerializeToString()


def _dg(op: pb.Op) -> str:
    return digest_of(op.SerializeToString(deterministic=True))


def _exec(*mounts: pb.Mount, inputs=(), **meta) -> pb.Op:
    op = pb.Op(inputs=list(inputs))
    op.exec.meta.args.append("true")
    op.exec.meta.cwd = "/"
    op.exec.meta.MergeFrom(pb.Meta(**meta))
    op.exec.mounts.extend([pb.Mount(input=-1, dest="/", output=0), *mounts])
    return op


def _mkfile() -> pb.Op:
    op = pb.Op()
    op.file.actions.add(input=-1, secondaryInput=-1, output=0).mkfile.CopyFrom(
        pb.FileActionMkFile(path="/a", mode=0o644, data=b"a", timestamp=-1))
    return op


@pytest.mark.parametrize("data,message", [
    (b"\xff\xff\xff", "not a BuildKit definition"),
    (_definition(pb.Op(source=pb.SourceOp(identifier="git://github.com/x/y"))), "git sources"),
    (_definition(pb.Op(source=pb.SourceOp(identifier="https://example.com/f"))), "https sources"),
    (_definition(pb.Op(source=pb.SourceOp(identifier="local://c",
                                          attrs={"local.followpaths": '["a"]'}))),
     "local.followpaths"),
    (_definition(pb.Op(build=pb.BuildOp())), "build ops"),
    (_definition(_exec(pb.Mount(input=-1, dest="/run/s", output=-1, mountType=pb.SECRET))),
     "mount /run/s: SECRET mounts"),
    (_definition(_exec(pb.Mount(input=-1, dest="/ssh", output=-1, mountType=pb.SSH))),
     "mount /ssh: SSH mounts"),
    (_definition(_exec(proxy_env=pb.ProxyEnv(http_proxy="http://p"))), "exec proxy_env"),
    (_definition(_exec(extraHosts=[pb.HostIP(Host="h", IP="1.2.3.4")])), "exec extraHosts"),
    (_definition(_exec(ulimit=[pb.Ulimit(Name="nofile", Soft=1, Hard=2)])), "exec ulimit"),
    (_definition(_exec(cgroupParent="/x")), "exec cgroupParent"),
    (_definition(_exec(pb.Mount(input=-1, dest="/w", output=-1))), "ForceNoOutput"),
    (_definition(_exec(pb.Mount(input=-1, dest="/c", output=-1, mountType=pb.CACHE))),
     "cache mount without an id"),
    (_definition(pb.Op(source=pb.SourceOp(identifier="docker-image://docker.io/library/a:b"),
                       platform=pb.Platform(OS="linux", Architecture="riscv128"))),
     "platform linux/riscv128"),
    (_definition(pb.Op(source=pb.SourceOp(identifier="docker-image://docker.io/library/a:b"),
                       constraints=pb.WorkerConstraints(filter=["x"]))), "worker constraints"),
])
def test_unsupported_or_malformed_is_one_clear_error(data, message):
    with pytest.raises(DefinitionError, match=message) as info:
        decode(data)
    assert "\n" not in str(info.value)


def test_exec_security_insecure():
    op = _exec()
    op.exec.security = pb.INSECURE
    with pytest.raises(UnsupportedError, match="INSECURE"):
        decode(_definition(op))


def test_unknown_field_is_named():
    op = _mkfile()
    data = bytearray(op.SerializeToString())
    data += bytes([0xC8, 0x01, 0x01])  # field 25, varint 1: not in v0.11.6's Op
    d = pb.Definition()
    getattr(d, "def").append(bytes(data))
    getattr(d, "def").append(pb.Op(inputs=[pb.Input(digest=digest_of(bytes(data)))])
                             .SerializeToString())
    with pytest.raises(UnsupportedError, match=r"unknown field Op#25"):
        decode(d.SerializeToString())


def test_file_actions_that_are_not_one_chain():
    op = _mkfile()
    op.file.actions[0].output = -1
    op.file.actions.add(input=-1, secondaryInput=-1, output=0).mkdir.CopyFrom(
        pb.FileActionMkDir(path="/d", mode=0o755, timestamp=-1))  # a second chain from scratch
    with pytest.raises(UnsupportedError, match="only a chain of actions"):
        decode(_definition(op))


def test_copy_from_an_action_result():
    op = _mkfile()
    op.file.actions[0].output = -1
    copy = op.file.actions.add(input=0, secondaryInput=0, output=0)
    copy.copy.CopyFrom(pb.FileActionCopy(src="/a", dest="/b", mode=-1, timestamp=-1))
    with pytest.raises(UnsupportedError, match="another action's result"):
        decode(_definition(op))


def test_missing_input_and_bad_terminal():
    missing = pb.Op(inputs=[pb.Input(digest="sha256:" + "0" * 64)])
    missing.merge.inputs.add(input=0)
    with pytest.raises(DefinitionError, match="referenced but not in the definition"):
        decode(_definition(missing))
    d = pb.Definition()
    getattr(d, "def").append(_mkfile().SerializeToString())
    with pytest.raises(DefinitionError, match="last op of a BuildKit definition"):
        decode(d.SerializeToString())


def test_output_index_out_of_range():
    with pytest.raises(DefinitionError, match="output index 3"):
        decode(_definition(_mkfile(), index=3))


def test_empty_definition_is_scratch():
    decoded = decode(b"")
    assert decoded.definition.head.identifier == "scratch"


def test_cwd_defaults_to_root_and_path_is_added():
    op = _exec()
    op.exec.meta.cwd = ""
    ex = decode(_definition(op)).definition.head
    assert ex.cwd == "/" and ex.env[-1].startswith("PATH=/usr/local/sbin")
