"""JSON text exactly as Go's encoding/json writes a []string (BuildKit's client stores a local
source's include/exclude patterns this way, and the bytes are part of the op digest)."""

from __future__ import annotations

# Go escapes <, > and & (HTML-safe by default), U+2028/U+2029, and control characters;
# "\n", "\r" and "\t" get their short forms, every other control character \u00XX
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
          "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
          "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        esc = _SHORT.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def string_list(items: tuple[str, ...] | list[str]) -> str:
    """`json.Marshal([]string{...})` of Go, byte for byte."""
    return "[" + ",".join(_quote(s) for s in items) + "]"
