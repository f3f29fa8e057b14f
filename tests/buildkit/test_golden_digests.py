"""Golden digests: llb's DSL and BuildKit's Go client (v0.11.6, through llbjson) marshal the
same program to byte-identical ops, hence the same digests, and the same metadata; a Go
client's definition read by llb and marshalled again is byte-identical too."""

from __future__ import annotations

import pytest
from bkhelp import go_digests, llbjson
from goldens import CASES

from llb.codec import digest_of
from llb.pb import decode, encode, ops_pb2 as pb

pytestmark = pytest.mark.usefixtures("have_llbjson")


def _parts(data: bytes) -> tuple[list[bytes], dict[str, bytes], bool]:
    """A definition's ops (sorted: the order is not part of any digest), metadata, Source."""
    d = pb.Definition()
    d.ParseFromString(data)
    meta = {k: v.SerializeToString(deterministic=True) for k, v in d.metadata.items()}
    return sorted(getattr(d, "def")), meta, d.HasField("Source")


@pytest.mark.parametrize("name,program,graph", CASES, ids=[c[0] for c in CASES])
def test_same_digests_as_the_go_client(name, program, graph):
    encoded = encode(program().to_definition(), local_unique="U")
    go = go_digests(graph)
    ours = encoded.ops + ([] if encoded.output is None else [_terminal_digest(encoded)])
    assert sorted(ours) == sorted(go)


@pytest.mark.parametrize("name,program,graph", CASES, ids=[c[0] for c in CASES])
def test_same_definition_as_the_go_client(name, program, graph):
    """Ops and metadata (caps, custom names) alike; only the order of ops may differ."""
    ours = encode(program().to_definition(), local_unique="U").data
    assert _parts(ours) == _parts(llbjson(graph))


@pytest.mark.parametrize("name,program,graph", CASES, ids=[c[0] for c in CASES])
def test_go_definition_read_and_marshalled_again(name, program, graph):
    """BuildKit bytes -> llb.Definition -> BuildKit bytes is the identity on the Go client's
    definitions, and the llb.Definition read is the one llb's DSL builds."""
    go = llbjson(graph)
    decoded = decode(go)
    assert _parts(encode(decoded.definition, local_unique="U").data) == _parts(go)
    expected = program().to_definition()
    if "diff(scratch, x)" in name:  # BuildKit has no such op: the Go client writes x itself
        expected = _normalised(expected)
        assert not _same(expected, program().to_definition())
    assert _same(decoded.definition, expected)


def _same(a, b) -> bool:
    """Equal graphs: ops by digest, output and metadata (the op order may differ)."""
    return dict(a.ops) == dict(b.ops) and a.output == b.output and a.metadata == b.metadata


def _terminal_digest(encoded) -> str:
    return digest_of(getattr(encoded.message, "def")[-1])


def _normalised(definition):
    """What BuildKit's format keeps of an llb definition: diff(scratch, x) is x, a merge of
    one input is the input (see llb.pb.encode), so decoding gives the simplified graph."""
    return decode(encode(definition, local_unique="U").data).definition
