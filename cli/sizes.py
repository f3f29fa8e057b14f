"""Byte sizes as the CLI reads and prints them (`--keep-storage 10GB`, `1.23MB`)."""

from __future__ import annotations

import re

from llb.errors import LLBError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3, "tib": 1024**4}


class SizeError(LLBError):
    """A size that does not parse (e.g. `--keep-storage 10XB`)."""


def parse_size(text: str) -> int:
    """Bytes from `512`, `10MB`, `1.5GiB`, `100k` (decimal units, or binary with `i`)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise SizeError(f"bad size {text!r} (examples: 500MB, 2GiB, 1048576)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def human_size(n: int) -> str:
    """Sizes as `buildctl du` prints them: 1.23MB."""
    if n < 1000:
        return f"{n}B"
    size = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.2f}{unit}".replace(".00", "")
