"""The examples: their graphs have the promised shape, and examples/merge really solves."""

from pathlib import Path

from click.testing import CliRunner

from llb.cli.loader import load_definition
from llb.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MERGE = str(ROOT / "examples/merge/build.py")


def test_merge_example_shape():
    d = load_definition(MERGE)
    assert d.head.kind == "merge" and len(d.head.inputs) == 3
    base, deps, app = (d.ops[i.digest] for i in d.head.inputs)
    assert base.kind == "file" and deps.kind == "diff" and app.kind == "diff"
    # the dependency and app trees are built independently: neither depends on the other
    deps_ops = {i.digest for i in deps.inputs}
    app_ops = {i.digest for i in app.inputs}
    assert deps_ops & app_ops == {d.head.inputs[0].digest}


def test_merge_example_on_busybox_shares_its_structure():
    d = load_definition(MERGE, "on_busybox")
    assert d.head.kind == "merge"
    idents = {op.identifier for op in d.ops.values() if op.kind == "source"}
    assert "local://busybox" in idents


def test_merge_example_run_target_execs_on_the_merge():
    d = load_definition(MERGE, "run")
    assert d.head.kind == "exec"
    assert d.ops[d.head.inputs[0].digest].kind == "merge"


def test_hello_example():
    d = load_definition(str(ROOT / "examples/hello"))
    assert [a.path for a in d.head.actions] == ["/hello", "/hello/world.txt"]


def test_merge_example_solves(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["solve", MERGE, "--root", str(tmp_path / "root"),
                                       "--output", f"type=local,dest={out}",
                                       "--progress", "plain"])
    assert result.exit_code == 0, result.stderr
    assert (out / "app/main.py").read_text().endswith('print(greet("merge"))\n')
    assert (out / "opt/deps/lib/greet.py").is_file()
    assert (out / "etc/passwd").read_text().startswith("root:x:0:0")
    assert (out / "app/main.py").stat().st_mode & 0o777 == 0o755
