"""Path normalisation for definitions, with Go's path.Clean semantics (as BuildKit uses).

Every path in an op is absolute and clean: relative paths resolve against a state's working
directory and `..` never climbs above "/".
"""

from __future__ import annotations

import posixpath


def clean(path: str) -> str:
    """Go's path.Clean: collapse slashes, drop `.`, resolve `..` lexically ("/.." is "/")."""
    if not path:
        return "."
    out = posixpath.normpath(path)
    if out.startswith("//"):  # POSIX normpath keeps a leading "//"; Go's Clean does not
        out = "/" + out.lstrip("/")
    return out


def lexical(path: str) -> str:
    """`path` with no empty or `.` components and no trailing slash (`..` kept), as pathlib
    shows a path the user typed, without loading pathlib (it imports re, enum, ...)."""
    top = "/" if path.startswith("/") else ""
    return top + "/".join(c for c in path.split("/") if c not in ("", ".")) or "."


def resolve(cwd: str, path: str, *, keep_slash: bool = False) -> str:
    """Absolute, clean form of `path` taken relative to `cwd` (BuildKit's normalizePath).

    With keep_slash, a trailing "/" (or "/.") survives, meaning "into this directory".
    """
    if "\x00" in path:
        raise ValueError(f"path {path!r} contains a NUL byte")
    if path.startswith("/"):
        out = clean(path)
    else:
        out = clean(posixpath.join("/", cwd or "/", path))
    if keep_slash and out != "/" and (path.endswith("/") or path.endswith("/.") or path == "."):
        out += "/"
    return out


def is_clean_abs(path: str, *, allow_slash: bool = False) -> bool:
    """True when `path` is absolute and already clean (optionally with one trailing "/")."""
    if not path.startswith("/") or "\x00" in path:
        return False
    if allow_slash and len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if "//" not in path and "/." not in path and (path == "/" or not path.endswith("/")):
        return True  # the common case, decided without normalising
    return clean(path) == path
