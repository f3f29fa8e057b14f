"""What a snapshotter does for the store (the overlayfs and native drivers implement it),
and what both share: materialising a full tree from a layer chain.

What only writing a snapshot needs (snapshot.merge, .removal, .upper, .differ, .treemap,
.metadata) is imported by the methods that write, here and in the store and the overlayfs
driver: a cached solve only reads committed snapshots, and those modules cost it ~2 ms."""

from __future__ import annotations

import errno
import os
from contextlib import AbstractContextManager

from llb.fsutil import remove_tree
from llb.snapshot.index import Index
from llb.snapshot.layers import Change, Layer

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Protocol
else:  # a protocol is a plain base class at run time (nothing checks one then)
    Protocol = object


class Draft(Protocol):
    """What a driver sees of a snapshot being written (the store's Mutable)."""

    id: str
    dir: Path
    parent_id: str | None
    trusted: bool
    underlay: Path | None


class Driver:
    """Base of the overlayfs and native drivers: they read committed snapshots through the
    store's Index and keep per-snapshot files under each snapshot's directory."""

    kind = ""
    layer_dirname = ""
    whiteouts = False  # layers mark deletions with overlay whiteouts (they are upperdirs)

    def __init__(self, index: Index):
        self.index = index

    # -- per driver
    def init_mutable(self, m: Draft) -> None: raise NotImplementedError
    def mount_mutable(self, m: Draft) -> Path: raise NotImplementedError
    def unmount_mutable(self, m: Draft) -> None: raise NotImplementedError
    def commit_mutable(self, m: Draft) -> list[Change]: raise NotImplementedError
    def view(self, sid: str) -> AbstractContextManager[str]: raise NotImplementedError

    def discard_mutable(self, m: Draft) -> None:
        """Forget per-mutable state (its directory is removed by the store)."""

    def forget(self) -> None:
        """Drop per-process caches (snapshots were removed)."""

    # -- shared
    def layer_root(self, sid: str) -> Path:
        """The directory holding layer sid's changed entries at their paths."""
        return self.index.snapshot_dir(sid) / self.layer_dirname

    def layers(self, ids: list[str]) -> list[Layer]:
        """The layers with these ids, in order."""
        return [Layer(i, self.layer_root(i), self.index.changes) for i in ids]

    def build_layer(self, sdir: Path, src: Path, changes: list[Change]) -> None:
        """Write a computed diff's content (a snapshot without parent) into sdir."""
        from llb.snapshot.upper import write_layer

        write_layer(src, sdir / self.layer_dirname, changes)

    def build_removal(self, sdir: Path, tree: Path, gone: list[str]) -> list[Change]:
        """Write into sdir the layer deleting `gone` (snapshot.removal.removal_paths) from
        the tree at `tree`, its parent's; its changes."""
        from llb.snapshot.removal import write_removal

        return write_removal(tree, sdir / self.layer_dirname, gone, whiteouts=self.whiteouts)

    def build_tree(self, dest: Path, chain: list[str]) -> None:
        """Apply a chain of layers onto the empty directory dest (the merge engine)."""
        make_root(dest)
        from llb.snapshot.merge import apply_layers

        apply_layers(dest, self.layers(chain))

    def ensure_tree(self, sid: str) -> str:
        """`<snapshot>/tree`, materialised from the snapshot's chain if it is not there yet
        (built in a temporary and renamed in, so a crash never leaves half a tree); a str,
        so that reading a tree already there needs no pathlib (a cached solve loads none)."""
        final = os.path.join(self.index.snapshots_dir, sid, "tree")
        if os.path.isdir(final):
            return final
        tmp = self.index.new_temp("tree")
        try:
            self.build_tree(tmp, self.index.tree_chain(sid))
            publish_cache(tmp, final)
        finally:
            remove_tree(tmp)
        return final


def make_root(path: Path) -> None:
    """An empty tree's root: mode 0755 whatever the process umask."""
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)


def publish_cache(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename a finished cache directory into a committed snapshot; losing a race to an
    identical one is fine."""
    try:
        os.rename(tmp, final)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
