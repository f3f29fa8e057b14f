"""Wildcard source paths of the file backend (`allow_wildcard` on copy and rm), with
BuildKit's meaning: Go's `filepath.Match` (`*` and `?` never cross "/", `[^a-z]` classes,
`\\` escapes), the path split at its first component holding a wildcard.

(Copy include/exclude patterns are gitignore-style, through solver.patterns.PathFilter, the
same filter the copy's cache checksum walks with, so a key covers exactly what is read.)"""

from __future__ import annotations

import functools
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
    parts = path.split("/")
    base: list[str] = []
    rest: list[str] = []
    found = False
    for part in parts:
        if not found and contains_wildcards(part):
            found = True
        if part == "":
            part = "/"
        (rest if found else base).append(part)
    return _join(base), _join(rest)


def _join(parts: list[str]) -> str:
    """Go's filepath.Join: join non-empty parts and clean."""
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return clean("/".join(parts))


def clean(path: str) -> str:
    """Go's path.Clean."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(comp)
    s = "/".join(out)
    if rooted:
        return "/" + s
    return s or "."


@functools.lru_cache(maxsize=256)
def _go_regex(pattern: str) -> re.Pattern[str] | None:
    """Translate a Go filepath.Match pattern; None for a malformed one (matches nothing)."""
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


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match(pattern, name) (a malformed pattern matches nothing)."""
    rx = _go_regex(pattern)
    return rx is not None and rx.fullmatch(name) is not None
