"""Cache keys: sha256 over an op with its inputs blanked plus, per input, either the input's
cache key or a checksum of exactly what the op reads from it.

The ingredients are kept beside the key (in the cache DB's history) so `--explain` can say
which input or content change made a vertex miss."""

from __future__ import annotations


import msgpack

from llb.codec import sha256
from llb.ops import Copy, FileOp, Op
from llb.values import field_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, Iterable

_VERSION = b"llb-cachekey-v1"
_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(v: Any, blank: bool) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or t is bytes or v is None:
        return v
    if t is tuple or t is list:
        return [_plain(x, blank) for x in v]
    names = _FIELDS.get(t)
    if names is None:
        names = field_names(t)
        if names is None:
            import dataclasses

            names = tuple(f.name for f in dataclasses.fields(v))
        _FIELDS[t] = names
    if blank and t.__name__ == "Input":
        return ["Input", "", v.index]
    return [t.__name__] + [_plain(getattr(v, n), blank) for n in names]


def blanked_digest(op: Op) -> str:
    """sha256 of the op's canonical encoding with every input digest blanked."""
    data = msgpack.packb(_plain(op, True), use_bin_type=True)
    return sha256(data).hexdigest()


def blanked_digest_from_bytes(data: bytes, input_digests: Iterable[str]) -> str:
    """Like blanked_digest, from the op's canonical bytes: every input digest string is cut
    out (its msgpack length header stays, so nothing else can collide with it)."""
    for d in set(input_digests):
        data = data.replace(d.encode(), b"")
    return sha256(b"bytes:" + data).hexdigest()


def partial_inputs(op: Op) -> dict[int, list[Copy]]:
    """Inputs the op reads only in part: input index -> the Copy actions reading it.

    For a FileOp, every input other than the base (inputs[0]) is read only through copies."""
    if not isinstance(op, FileOp):
        return {}
    out: dict[int, list[Copy]] = {}
    for a in op.actions:
        if isinstance(a, Copy) and a.source != 0:
            out.setdefault(a.source, []).append(a)
    return out


def compute_key(blanked: str, parts: list[str], source: str | None = None) -> str:
    """The cache key from the blanked op digest, per-input parts, and a source content key."""
    h = sha256(_VERSION)
    h.update(b"\0op:" + blanked.encode())
    if source is not None:
        h.update(b"\0src:" + source.encode())
    for p in parts:
        h.update(b"\0in:" + p.encode())
    return "sha256:" + h.hexdigest()


def explain(prev: dict[str, Any] | None, cur: dict[str, Any], names: dict[str, str]) -> str:
    """Why a vertex with ingredients `cur` missed, compared with its previous record `prev`.

    Ingredients: {"op": blanked digest, "source": content key or None,
    "inputs": [{"vertex": digest, "index": n, "kind": "key"|"content", "value": str}]}."""
    if prev is None:
        return "no earlier build of this op"
    reasons = []
    if prev.get("op") != cur.get("op"):
        reasons.append("the op itself changed")
    if prev.get("source") != cur.get("source"):
        reasons.append("source content changed")
    pins, cins = prev.get("inputs", []), cur.get("inputs", [])
    if len(pins) != len(cins):
        reasons.append(f"number of inputs changed ({len(pins)} -> {len(cins)})")
    for i, (p, c) in enumerate(zip(pins, cins)):
        label = f"input {i} ({names.get(c['vertex'], c['vertex'][:19])})"
        if p.get("vertex") != c.get("vertex"):
            reasons.append(f"{label} is a different op")
        elif p.get("value") != c.get("value"):
            if c.get("kind") == "content":
                reasons.append(f"{label}: the content read from it changed")
            else:
                reasons.append(f"{label} changed")
    if not reasons:
        return "same key as before but its cache record is gone (pruned)"
    return "; ".join(reasons)
