"""The CLI with BuildKit definitions: `llb marshal --format buildkit`, and `llb dump` /
`llb solve` of a BuildKit definition from any client (told apart from llb's own by content),
solved locally without a daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bkhelp import BUILDCTL, MISSING, llbjson
from goldens import CASES

from llb.codec import digest_of
from llb.pb import decode, encode, ops_pb2 as pb

LLB = str(Path(sys.executable).parent / "llb")
REPO = Path(__file__).resolve().parents[2]


def _llb(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LLB, *args], input=input, capture_output=True, timeout=120)


def test_marshal_buildkit_is_the_encoding_and_buildctl_reads_it(tmp_path):
    out = tmp_path / "def.pb"
    p = _llb("marshal", str(REPO / "examples/merge/build.py"), "--format", "buildkit", "-o",
             str(out))
    assert p.returncode == 0, p.stderr
    sys.path.insert(0, str(REPO / "examples/merge"))
    from llb.cli.loader import load_definition

    expected = encode(load_definition(str(REPO / "examples/merge/build.py"))).data
    assert out.read_bytes() == expected
    if not BUILDCTL.exists():
        pytest.skip(MISSING)
    dump = subprocess.run([str(BUILDCTL), "debug", "dump-llb"], stdin=out.open("rb"),
                          capture_output=True, check=True)
    digests = [json.loads(line)["Digest"] for line in dump.stdout.splitlines()]
    assert sorted(digests) == sorted(digest_of(op) for op in getattr(_definition(expected), "def"))


def _definition(data: bytes) -> pb.Definition:
    d = pb.Definition()
    d.ParseFromString(data)
    return d


def test_marshal_to_stdout_and_llb_format_by_default(tmp_path):
    p = _llb("marshal", str(REPO / "examples/hello/build.py"), "--format", "buildkit", "-o", "-")
    assert p.returncode == 0 and p.stdout[:1] == b"\x0a"
    plain = _llb("marshal", str(REPO / "examples/hello/build.py"), "-o", "-")
    assert plain.returncode == 0 and plain.stdout[:1] == b"\x84"  # msgpack map


def test_marshal_scratch_as_buildkit_is_refused(tmp_path):
    build = tmp_path / "build.py"
    build.write_text("import llb\ndef build():\n    return llb.scratch()\n")
    p = _llb("marshal", str(build), "--format", "buildkit", "-o", str(tmp_path / "x.pb"))
    assert p.returncode == 2
    assert p.stderr.decode().startswith("error: the result is scratch")
    assert not (tmp_path / "x.pb").exists()


@pytest.mark.usefixtures("have_llbjson")
@pytest.mark.parametrize("name", ["relative paths", "diff, diff against", "exec mounts"])
def test_dump_a_go_client_definition_by_content_not_extension(tmp_path, name):
    program, graph = next((c[1], c[2]) for c in CASES if c[0].startswith(name))
    data = llbjson(graph)
    for filename in ("def.pb", "graph.bin", "-"):
        if filename == "-":
            p = _llb("dump", "-", input=data)
        else:
            (tmp_path / filename).write_bytes(data)
            p = _llb("dump", str(tmp_path / filename))
        assert p.returncode == 0, p.stderr
        assert f'"digest": "{decode(data).definition.output.digest}"' in p.stdout.decode()


def test_llb_definition_named_pb_is_still_llbs(tmp_path):
    data = _llb("marshal", str(REPO / "examples/hello/build.py"), "-o", "-").stdout
    (tmp_path / "x.pb").write_bytes(data)
    p = _llb("dump", str(tmp_path / "x.pb"))
    assert p.returncode == 0 and b"/hello/world.txt" in p.stdout


@pytest.mark.usefixtures("have_llbjson")
def test_solve_a_go_client_definition_locally(tmp_path):
    program, graph = next((c[1], c[2]) for c in CASES if c[0].startswith("long chain"))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one/x").write_text("x\n")
    (tmp_path / "one/z").write_text("z\n")
    (tmp_path / "two/y").write_text("y\n")
    (tmp_path / "def.pb").write_bytes(llbjson(graph))
    out = tmp_path / "out"
    p = _llb("solve", str(tmp_path / "def.pb"), "--root", str(tmp_path / "root"),
             "--local", f"one={tmp_path / 'one'}", "--local", f"two={tmp_path / 'two'}",
             "--output", f"type=local,dest={out}", "--progress", "plain")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(out / "a")) == ["x", "y", "z"]
    assert (out / "a/y").read_text() == "y\n"


@pytest.mark.parametrize("data,message", [
    (b"", "definition is empty"),
    (b"\x0a\x05\xff\xff", "not a BuildKit definition"),
])
def test_bad_buildkit_bytes_are_one_line_and_exit_2(tmp_path, data, message):
    (tmp_path / "def.pb").write_bytes(data)
    for command in ("dump", "solve"):
        p = _llb(command, str(tmp_path / "def.pb"), *(["--root", str(tmp_path / "r")]
                                                      if command == "solve" else []))
        assert p.returncode == 2
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")


def test_unsupported_op_names_it_and_exits_2(tmp_path):
    op = pb.Op()
    op.exec.meta.args.append("true")
    op.exec.mounts.add(input=-1, dest="/", output=0)
    op.exec.mounts.add(input=-1, dest="/run/secrets/token", output=-1, mountType=pb.SECRET)
    d = pb.Definition()
    data = op.SerializeToString(deterministic=True)
    getattr(d, "def").extend([data, pb.Op(inputs=[pb.Input(digest=digest_of(data))])
                              .SerializeToString()])
    (tmp_path / "def.pb").write_bytes(d.SerializeToString())
    p = _llb("solve", str(tmp_path / "def.pb"), "--root", str(tmp_path / "r"))
    assert p.returncode == 2
    assert p.stderr.decode().splitlines() == [
        f"error: {tmp_path / 'def.pb'}: BuildKit op {digest_of(data)[:19]}: mount "
        f"/run/secrets/token: SECRET mounts are not supported"]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_cached_llb_solve_never_imports_protobuf(tmp_path):
    definition = tmp_path / "def.llb"
    definition.write_bytes(_llb("marshal", str(REPO / "examples/hello/build.py"), "-o", "-").stdout)
    code = ("import sys\nfrom llb.cli.main import main\n"
            f"args = ['solve', {str(definition)!r}, '--root', {str(tmp_path / 'root')!r}, "
            "'--progress', 'plain']\n"
            "for _ in range(2):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert not e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith(('google', 'llb.pb', "
            "'llb.remote'))))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
