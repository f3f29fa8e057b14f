"""The README's build file is real: it loads and gives the graph the README describes."""

import re
from pathlib import Path

from llb.cli.loader import load_definition

ROOT = Path(__file__).resolve().parents[2]


def test_readme_build_file_loads(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    build = tmp_path / "build.py"
    build.write_text(code)
    d = load_definition(str(build))
    assert d.head.kind == "merge" and len(d.head.inputs) == 3
    kinds = sorted(op.kind for op in d.ops.values())
    assert kinds.count("exec") == 2 and kinds.count("diff") == 2
    locals_ = [op.identifier for op in d.ops.values() if op.kind == "source"]
    assert "local://busybox" in locals_
