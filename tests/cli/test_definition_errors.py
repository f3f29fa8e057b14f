"""The wording of two definition errors a user meets through `llb solve` (issue 10, item
10): no doubled word for a bad output index, and a version given as a string says so."""

from __future__ import annotations

from pathlib import Path

from hostile import SCRATCH, definition, inp, scratch_digest
from solvehelp import LLB, llb_root  # noqa: F401 (fixture)


def _error(r) -> str:
    assert r.code == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def test_output_index_out_of_range(llb_root: LLB, tmp_path: Path):
    bad = tmp_path / "bad.llb"
    bad.write_bytes(definition(SCRATCH, output=inp(scratch_digest(), 1 << 20)))
    line = _error(llb_root.solve(bad))
    assert f"definition output index {1 << 20} out of range" in line
    assert "output output" not in line


def test_version_as_a_string(llb_root: LLB, tmp_path: Path):
    bad = tmp_path / "bad.llb"
    bad.write_bytes(definition(SCRATCH, version="1"))
    line = _error(llb_root.solve(bad))
    assert "definition version must be the integer 1, got a string ('1')" in line
    assert "(want 1)" not in line
    two = tmp_path / "two.llb"
    two.write_bytes(definition(SCRATCH, version=2))
    assert "unsupported definition version 2 (want 1)" in _error(llb_root.solve(two))
