"""Cache keys: blanked ops, which inputs are read in part, and --explain's reasons."""

from __future__ import annotations

from llb.codec import encode_op
from llb.ops import Copy, FileOp, Input, MergeOp, Mkfile, SourceOp
from llb.solver.cachekey import (
    blanked_digest, blanked_digest_from_bytes, compute_key, explain, partial_inputs,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_blanked_digest_ignores_input_digests_but_not_indexes_or_fields():
    m1 = MergeOp((Input(A), Input(B)))
    m2 = MergeOp((Input(B), Input(A)))
    assert blanked_digest(m1) == blanked_digest(m2)
    assert blanked_digest(m1) != blanked_digest(MergeOp((Input(A), Input(B, 1))))
    assert blanked_digest(m1) != blanked_digest(MergeOp((Input(A),)))
    f1 = FileOp((Input(A),), (Mkfile("/x", b"1"),))
    f2 = FileOp((Input(B),), (Mkfile("/x", b"2"),))
    assert blanked_digest(f1) != blanked_digest(f2)


def test_blanked_digest_from_canonical_bytes_agrees_on_what_is_equal():
    f1 = FileOp((Input(A),), (Mkfile("/x", b"1"),))
    f2 = FileOp((Input(B),), (Mkfile("/x", b"1"),))
    f3 = FileOp((Input(B),), (Mkfile("/x", b"2"),))
    d1 = blanked_digest_from_bytes(encode_op(f1), [A])
    assert d1 == blanked_digest_from_bytes(encode_op(f2), [B])
    assert d1 != blanked_digest_from_bytes(encode_op(f3), [B])


def test_copy_sources_other_than_the_base_are_read_in_part():
    op = FileOp((Input(A), Input(B)), (Copy(1, "/src", "/dst"), Copy(0, "/x", "/y")))
    parts = partial_inputs(op)
    assert list(parts) == [1] and parts[1][0].src == "/src"
    assert partial_inputs(MergeOp((Input(A),))) == {}
    assert partial_inputs(SourceOp("scratch")) == {}


def test_key_depends_on_every_ingredient():
    k = compute_key("op", ["k:x:0", "c:y"], None)
    assert k.startswith("sha256:") and len(k) == 71
    assert k != compute_key("op2", ["k:x:0", "c:y"], None)
    assert k != compute_key("op", ["k:x:1", "c:y"], None)
    assert k != compute_key("op", ["c:y", "k:x:0"], None)
    assert k != compute_key("op", ["k:x:0", "c:y"], "sha256:src")


def test_explain_names_the_input_that_changed():
    prev = {"op": "o", "source": None, "inputs": [
        {"vertex": A, "index": 0, "kind": "key", "value": "k1"},
        {"vertex": B, "index": 0, "kind": "content", "value": "c1"}]}
    names = {A: "mkfile /a", B: "local://ctx"}
    cur = {**prev, "inputs": [prev["inputs"][0], {**prev["inputs"][1], "value": "c2"}]}
    assert explain(prev, cur, names) == "input 1 (local://ctx): the content read from it changed"
    cur = {**prev, "inputs": [{**prev["inputs"][0], "value": "k2"}, prev["inputs"][1]]}
    assert explain(prev, cur, names) == "input 0 (mkfile /a) changed"
    assert explain({**prev, "source": "s1"}, {**prev, "source": "s2"}, names) == "source content changed"
    assert explain(None, prev, names) == "no earlier build of this op"
    assert "pruned" in explain(prev, prev, names)
