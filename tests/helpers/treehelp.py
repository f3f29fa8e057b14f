"""Writing, reading and committing small trees in snapshot tests."""

from __future__ import annotations

import os
from pathlib import Path

from llb.snapshot import Store


def write_tree(root: Path, spec: dict[str, bytes | str | None]) -> None:
    """Write files: {"a/b.txt": b"data"} (parents created), a str value "->target" makes a
    symlink, None makes a directory."""
    for rel, content in spec.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            p.mkdir(exist_ok=True)
        elif isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], p)
        else:
            p.write_bytes(content if isinstance(content, bytes) else content.encode())


def read_tree(root: Path) -> dict[str, bytes | str | None]:
    """The inverse of write_tree (symlinks as "->target", directories as None)."""
    out: dict[str, bytes | str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "->" + os.readlink(p)
            elif p.is_dir():
                out[rel] = None
            else:
                out[rel] = p.read_bytes()
    return out


def commit_tree(store: Store, parent, spec: dict, *, delete: tuple[str, ...] = (), trusted=False):
    """Prepare on parent, delete paths, write spec, commit; returns the Ref."""
    import shutil

    m = store.prepare(parent, trusted=trusted)
    with m.mount() as path:
        for rel in delete:
            p = path / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        write_tree(path, spec)
    return m.commit()
