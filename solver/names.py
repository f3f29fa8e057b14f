"""Vertex names: what an op does with its main arguments, as progress shows it
(`mkfile /c/c.txt`, `copy /a.txt /out/a.txt`, `exec sh -c "make"`, `merge (3 inputs)`).

Apart from the op handlers (`llb.solver.ops.*`, each of which re-exports its op's name function)
so that naming every vertex of a fully cached solve imports none of them: their modules load
what running an op needs (runc's executor, the copy machinery)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["action_name", "exec_name", "file_name", "merge_name", "diff_name", "source_name",
           "vertex_name"]

_SIMPLE_ARG = r"^[A-Za-z0-9_./=:@%+,-]+$"  # compiled on first use (re's cache)


def vertex_name(op: Any) -> str:
    """The progress name of any op; an unknown kind is named by its kind."""
    namer = _BY_KIND.get(op.kind)
    return namer(op) if namer is not None else str(op.kind)


def action_name(action: Any) -> str:
    """What one file action does with its paths, e.g. `copy /a.txt /out/a.txt`."""
    if action.action == "copy":
        return f"copy {action.src} {action.dest}"
    return f"{action.action} {action.path}"


def file_name(op: Any) -> str:
    """A FileOp: its actions' names joined by ", "."""
    return ", ".join(action_name(a) for a in op.actions) or "file"


def exec_name(op: Any) -> str:
    """`exec sh -c "make"`: the argv, with a shell script and any unusual argument quoted."""
    import re  # an exec's name (re loads enum): not for a cached solve of file ops

    out = []
    quote_next = False
    for arg in op.args:
        if quote_next or not re.match(_SIMPLE_ARG, arg):
            import json  # (quoting only)

            out.append(json.dumps(arg, ensure_ascii=False))
        else:
            out.append(arg)
        quote_next = arg == "-c"
    return "exec " + " ".join(out)


def merge_name(op: Any) -> str:
    return f"merge ({len(op.inputs)} inputs)"


def diff_name(op: Any) -> str:
    return "diff"


def source_name(op: Any) -> str:
    """The identifier: `local://context`, `docker-image://...`, `scratch`."""
    return op.identifier


_BY_KIND = {"file": file_name, "exec": exec_name, "merge": merge_name, "diff": diff_name,
            "source": source_name}
