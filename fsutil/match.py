"""The one wildcard matcher: Go's `filepath.Match`, as BuildKit's copy and rm use it (`*` and
`?` never cross "/", `[a-z]` classes negated by `^` only (`[!a]` is a class of "!" and "a"),
`\\` escapes the next character), with the split of a wildcard path at its first component
holding a wildcard. Whatever reads the paths a wildcard names and whatever keys that read
(a copy's cache checksum) both go through this module, so they always agree."""

from __future__ import annotations

import functools

from llb.paths import clean

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import re


def contains_wildcards(name: str) -> bool:
    """Whether name has an unescaped `*`, `?` or `[` (fsutil's containsWildcards)."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


def split_wildcards(path: str) -> tuple[str, str]:
    """Split path at its first component holding a wildcard: (literal base, pattern rest)."""
    base: list[str] = []
    rest: list[str] = []
    found = False
    for part in path.split("/"):
        if not found and contains_wildcards(part):
            found = True
        (rest if found else base).append(part or "/")
    return _join(base), _join(rest)


def _join(parts: list[str]) -> str:
    """Go's filepath.Join: join non-empty parts and clean."""
    parts = [p for p in parts if p]
    return clean("/".join(parts)) if parts else ""


def match(pattern: str, name: str) -> bool:
    """Go's filepath.Match(pattern, name) (a malformed pattern matches nothing)."""
    rx = _regex(pattern)
    return rx is not None and rx.fullmatch(name) is not None


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    """Translate a Go filepath.Match pattern; None for a malformed one."""
    import re  # a pattern's (re loads enum): not for a cached solve

    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                return None
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            ranges = []
            first = True
            while True:
                if i >= n:
                    return None
                if pattern[i] == "]" and not first:
                    break
                first = False
                lo, i = _class_char(pattern, i)
                if lo is None:
                    return None
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi is None or hi < lo:
                        return None
                    ranges.append(re.escape(lo) + "-" + re.escape(hi))
                else:
                    ranges.append(re.escape(lo))
            body = "".join(ranges)
            out.append(f"[^{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, i: int) -> tuple[str | None, int]:
    if i >= len(pattern):
        return None, i
    ch = pattern[i]
    if ch in "-]":
        return None, i
    if ch == "\\":
        i += 1
        if i >= len(pattern):
            return None, i
        ch = pattern[i]
    return ch, i + 1
