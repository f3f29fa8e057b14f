"""JSON documents as images carry them: parsed from hostile bytes into plain values (one
clear error for bad UTF-8, bad JSON, duplicate keys or absurd nesting) and written
canonically (sorted keys, no spaces, UTF-8), so one value always has one digest."""

from __future__ import annotations

import json
from typing import Any, Callable

from llb.content.errors import InvalidManifestError


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json(data: bytes, what: str,
              error: Callable[[str], Exception] = InvalidManifestError) -> Any:
    """The JSON value in `data`; `error(message)` (InvalidManifestError) naming `what`."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise error(f"{what}: not UTF-8 text") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except ValueError as e:
        raise error(f"{what}: not valid JSON ({str(e).splitlines()[0][:120]})") from None


def canonical_json(value: Any) -> bytes:
    """Deterministic bytes for a JSON value: sorted keys, compact separators, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
