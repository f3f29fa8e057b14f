"""Digest stability: the definitions of fixed programs hash to checked-in values.

A change here changes every cache key users have: if it is deliberate (a wire format change
with a version bump), regenerate with `LLB_UPDATE_GOLDEN=1 pytest tests/llb/test_golden.py`.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

from programs import PROGRAMS

GOLDEN = Path(__file__).with_name("golden.json")


def _current() -> dict[str, dict[str, str]]:
    out = {}
    for name in sorted(PROGRAMS):
        d = PROGRAMS[name]().to_definition()
        out[name] = {"output": d.output.digest,
                     "bytes_sha256": hashlib.sha256(d.to_bytes()).hexdigest()}
    return out


def test_golden_digests():
    current = _current()
    if os.environ.get("LLB_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.skip("golden digests rewritten")
    assert json.loads(GOLDEN.read_text()) == current


def test_scratch_encoding_is_exact():
    """The canonical bytes of the scratch op, spelled out: sorted keys, arrays, no floats."""
    import llb
    from llb.codec import encode_op

    want = (b"\x85\xa5attrs\x90\xa7exclude\x90\xaaidentifier\xa7scratch"
            b"\xa7include\x90\xa4kind\xa6source")
    assert encode_op(llb.SourceOp("scratch")) == want
    assert llb.scratch().output.digest == \
        "sha256:ed9d48483abb9d0b6f2bed80ba76280e9caaf2e1197fc1d222bbc7d5ac11a0a3"
