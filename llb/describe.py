"""One-line, human-readable summaries of ops (for dumps and graph labels)."""

from __future__ import annotations

import shlex

from llb import ops as _ops


def _short(text: str, limit: int = 60) -> str:
    text = repr(text)[1:-1] if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(op: _ops.Op) -> str:
    """What the op does with its main arguments, e.g. `mkfile /c/c.txt`, `merge (3 inputs)`."""
    if isinstance(op, _ops.SourceOp):
        return _short(op.identifier, 100)
    if isinstance(op, _ops.ExecOp):
        return "exec " + _short(shlex.join(op.args), 80)
    if isinstance(op, _ops.FileOp):
        parts = []
        for a in op.actions[:3]:
            if isinstance(a, _ops.Copy):
                parts.append(f"copy {_short(a.src)} {_short(a.dest)}")
            else:
                parts.append(f"{a.action} {_short(a.path)}")
        if len(op.actions) > 3:
            parts.append(f"(+{len(op.actions) - 3} more)")
        return ", ".join(parts)
    if isinstance(op, _ops.MergeOp):
        return f"merge ({len(op.inputs)} inputs)"
    return "diff"
