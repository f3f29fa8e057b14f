"""The loader pauses the cyclic GC while a build file runs and, turning it back on, leaves
what the build made in the oldest generation, where the next collections do not walk it."""

import gc
from pathlib import Path

import pytest

from llb.cli.loader import load_build_file


def test_a_build_files_graph_is_left_in_the_oldest_generation(tmp_path: Path) -> None:
    if not gc.isenabled():
        pytest.skip("the GC is off in this process")
    build = tmp_path / "build.py"
    build.write_text("import llb\n\n\ndef build():\n"
                     "    return llb.scratch().file(llb.mkdir('/d').mkfile('/d/a', b'x'))\n")
    definition = load_build_file(build)
    assert gc.isenabled()
    young = {id(o) for generation in (0, 1) for o in gc.get_objects(generation=generation)}
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    op = definition.head
    for obj in (op, *op.actions):
        assert id(obj) not in young and id(obj) in oldest
    assert [a.path for a in op.actions] == ["/d", "/d/a"]
