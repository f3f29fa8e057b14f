"""Layers and changes: a layer is one recorded diff (the paths one snapshot added, changed or
deleted); a ref's layer chain is the ordered list of layers that rebuild its tree from empty."""

from __future__ import annotations

from llb.records import Valued

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Literal

    ChangeKind = Literal["add", "modify", "delete"]


class Change(Valued):
    """One path changed by a layer. `path` is relative ("a/b.txt", no leading slash).

    kind: "add" (absent in the layer's lower), "modify" (present there; for a directory it
    means its metadata changed; a type change, e.g. a file replacing a directory, is
    "modify"), "delete" (present in the lower, gone; only the topmost deleted path of a
    subtree is listed). Opaque directories are already expanded into deletions.
    Frozen, compared and shown as a frozen dataclass would be (written out, not made by
    @dataclass, which compiled them at every `llb` command's start).
    """

    __slots__ = ("path", "kind")
    __match_args__ = ("path", "kind")
    path: str
    kind: ChangeKind

    def __init__(self, path: str, kind: ChangeKind) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "kind", kind)

    def _values(self) -> tuple[str, ChangeKind]:
        return self.path, self.kind

    def __repr__(self) -> str:
        return f"Change(path={self.path!r}, kind={self.kind!r})"

    def __reduce__(self) -> tuple[type[Change], tuple[str, ChangeKind]]:
        return Change, self._values()


def path_key(path: str) -> str:
    """Sort key for change paths: component-wise, so a directory's subtree is contiguous
    and a parent always sorts before its children. The path with each "/" made a NUL, which
    sorts before any character a name can hold: the order of its tuple of components,
    compared at C speed (a sort by the tuples spent ~7k instructions per change)."""
    return path.replace("/", "\0")


def change_key(change: Change) -> str:
    """path_key of a change's path (one call per change in a sort)."""
    return change.path.replace("/", "\0")


class Layer:
    """One recorded diff. `id` is stable (the id of the snapshot that owns the diff) and is
    what the blob cache keys on; `changes()` is read from the metadata DB once."""

    __slots__ = ("id", "root", "_load", "_changes")

    def __init__(self, layer_id: str, root: Path, load: Callable[[str], list[Change]]):
        self.id = layer_id
        self.root = root  # directory holding this layer's changed entries at their paths
        self._load = load
        self._changes: list[Change] | None = None

    def changes(self) -> list[Change]:
        """The layer's changes, sorted by `path_key`."""
        if self._changes is None:
            self._changes = self._load(self.id)
        return self._changes

    def path(self, rel: str) -> Path:
        """Where the content and metadata of `rel` in this layer live (for an added or
        modified path, and for the parent directories of any change). Never write there."""
        return self.root / rel.lstrip("/") if rel.strip("/") else self.root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Layer({self.id[:12]})"
