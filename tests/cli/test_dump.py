"""`llb dump` and `llb marshal`: formats, BUILD kinds, and one-line exit-2 errors."""

import json
import subprocess
import sys
from pathlib import Path

import pydot
import pytest
from click.testing import CliRunner

import llb
from llb.cli.loader import load_definition
from llb.cli.main import main

# pydot's parser uses pyparsing names that newer pyparsing deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "examples/hello/build.py")
MERGE = str(ROOT / "examples/merge/build.py")


def run(*args, input=None):  # noqa: A002
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_line_error(result, code=2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_dump_json_hello():
    result = run("dump", HELLO)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    d = load_definition(HELLO)
    assert doc["output"] == {"digest": d.output.digest, "index": 0}
    assert [op["digest"] for op in doc["ops"]] == list(d.ops)
    file_op = doc["ops"][-1]
    assert file_op["kind"] == "file" and file_op["summary"] == "mkdir /hello, mkfile /hello/world.txt"
    assert file_op["op"]["actions"][1]["data"] == "hello, world\n"
    assert file_op["metadata"]["progress_name"] == "write hello/world.txt"


def test_dump_json_shows_binary_data_as_base64(tmp_path):
    build = tmp_path / "bin.py"
    build.write_text("import llb\ndef build():\n"
                     "    return llb.scratch().file(llb.mkfile('/b', b'\\xff\\x00'))\n")
    doc = json.loads(run("dump", str(build)).stdout)
    assert doc["ops"][-1]["op"]["actions"][0]["data"] == {"base64": "/wA="}


def test_dump_dot_merge_parses_as_graphviz():
    result = run("dump", MERGE, "--format", "dot")
    assert result.exit_code == 0, result.stderr
    graphs = pydot.graph_from_dot_data(result.stdout)
    assert graphs and len(graphs) == 1
    g = graphs[0]
    d = load_definition(MERGE)
    nodes = {n.get_name().strip('"'): n for n in g.get_nodes() if n.get_name() not in ("node", "edge", "graph")}
    assert set(nodes) == set(d.ops)
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in g.get_edges()}
    want = {(i.digest, digest) for digest, op in d.ops.items() for i in op.inputs}
    assert edges == want
    assert nodes[d.output.digest].get("peripheries") == "2"
    labels = " ".join(n.get("label") for n in nodes.values())
    for name in ["base root", "dependency layer", "app layer", "base + deps + app"]:
        assert name in labels


def test_dot_escapes_quotes_and_labels_exec_outputs(tmp_path):
    build = tmp_path / "q.py"
    build.write_text('import llb\ndef build():\n'
                     '    ex = llb.image("busybox").run(["sh", "-c", "echo \\"hi\\" \\\\ there"],\n'
                     '        mounts=[llb.mount("/out", llb.scratch())])\n'
                     '    return llb.merge([ex.root(), ex.get_mount("/out")])\n')
    out = run("dump", str(build), "--format", "dot").stdout
    g = pydot.graph_from_dot_data(out)[0]
    labels = [e.get("label") for e in g.get_edges() if e.get("label")]
    assert labels == ['"1"']
    assert any('echo' in (n.get("label") or "") for n in g.get_nodes())


def test_marshal_round_trip_and_dump_of_the_file(tmp_path):
    out = tmp_path / "graph.llb"
    result = run("marshal", MERGE, "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_bytes() == load_definition(MERGE).to_bytes()
    assert run("dump", str(out)).stdout == run("dump", MERGE).stdout
    # and through stdin
    assert run("dump", "-", input=out.read_bytes()).stdout == run("dump", MERGE).stdout
    assert [p.name for p in tmp_path.iterdir()] == ["graph.llb"]  # no temp files left


def test_marshal_to_stdout():
    result = run("marshal", HELLO, "-o", "-")
    assert result.stdout_bytes == load_definition(HELLO).to_bytes()


def test_target_and_directory_build():
    deps = json.loads(run("dump", MERGE, "--target", "deps").stdout)
    assert deps["ops"][-1]["kind"] == "diff"
    assert run("dump", str(ROOT / "examples/merge")).stdout == run("dump", MERGE).stdout


def test_loader_isolates_sibling_helpers(tmp_path):
    for name, value in [("one", "1"), ("two", "2")]:
        d = tmp_path / name
        d.mkdir()
        (d / "helper.py").write_text(f"VALUE = {value!r}\n")
        (d / "build.py").write_text("import llb\nfrom helper import VALUE\n"
                                    "def build():\n    return llb.scratch().file(llb.mkfile('/v', VALUE))\n")
    before = list(sys.path)
    one = load_definition(str(tmp_path / "one"))
    two = load_definition(str(tmp_path / "two"))
    assert one.head.actions[0].data == b"1" and two.head.actions[0].data == b"2"
    assert sys.path == before and "helper" not in sys.modules


@pytest.mark.parametrize("body, message", [
    ("def build():\n    raise ValueError('boom')\n", "bad.py:2: build() failed: ValueError: boom"),
    ("x = 1\n", "bad.py: defines no function build() returning an llb.State"),
    ("build = 3\n", "bad.py: build is a int, not a function"),
    ("def build():\n    return 42\n", "bad.py: build() returned int, not an llb.State"),
    ("def build(:\n", "bad.py:1: syntax error"),
    ("import no_such_module_xyz\n", "bad.py:1: loading failed: ModuleNotFoundError"),
    ("raise SystemExit(3)\n", "bad.py:1: loading failed: SystemExit: 3"),
    ("import llb\ndef build():\n    return llb.scratch().file(llb.mkdir('/a', 0o70000))\n",
     "bad.py:3: build() failed: mkdir mode must be an int in 0..0o7777"),
    ("import llb\ndef build():\n    return llb.image('busybox').run('x', readonly_rootfs=True)\n",
     "bad.py: build(): this exec has a read-only rootfs"),
])
def test_bad_build_files_exit_2_naming_the_file(tmp_path, body, message):
    build = tmp_path / "bad.py"
    build.write_text(body)
    for cmd in (["dump", str(build)], ["marshal", str(build), "-o", str(tmp_path / "o")]):
        err = one_line_error(run(*cmd))
        assert message in err and str(build) in err
    assert not (tmp_path / "o").exists()


def test_bad_definition_files(tmp_path):
    bad = tmp_path / "graph.llb"
    bad.write_bytes(b"\x92\x01\x02")
    err = one_line_error(run("dump", str(bad)))
    assert f"{bad}: definition must be a map" in err
    assert "<stdin>: definition is empty" in one_line_error(run("dump", "-", input=b""))
    err = one_line_error(run("dump", str(tmp_path / "nope.py")))
    assert "no such build file" in err
    assert "--target applies to build files" in one_line_error(run("dump", str(bad), "--target", "x"))
    assert "no function nope()" in one_line_error(run("dump", HELLO, "--target", "nope"))


def test_unwritable_output(tmp_path):
    err = one_line_error(run("marshal", HELLO, "-o", str(tmp_path / "no/such/dir/x.llb")))
    assert "cannot write" in err


def test_bad_format_is_a_usage_error():
    result = run("dump", HELLO, "--format", "yaml")
    assert result.exit_code == 2


def test_console_script():
    llb_bin = Path(sys.executable).parent / "llb"
    done = subprocess.run([str(llb_bin), "dump", MERGE, "--format", "dot"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("digraph llb {")
    done = subprocess.run([str(llb_bin), "dump", "/nonexistent/build.py"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == "error: /nonexistent/build.py: no such build file or definition\n"


def test_examples_build_what_they_say():
    merged = load_definition(MERGE)
    assert merged.head.kind == "merge" and len(merged.head.inputs) == 3
    kinds = [op.kind for op in merged.ops.values()]
    assert kinds.count("diff") == 2
    assert isinstance(merged, llb.Definition)
