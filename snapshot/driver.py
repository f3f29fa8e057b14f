"""What a snapshotter does for the store (the overlayfs and native drivers implement it),
and what both share: materialising a full tree from a layer chain."""

from __future__ import annotations

import errno
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from llb.snapshot.copy import remove_tree
from llb.snapshot.differ import write_layer_dir
from llb.snapshot.layers import Change

if TYPE_CHECKING:
    from llb.snapshot.store import Mutable, Store


class Driver:
    """Base of the overlayfs and native drivers."""

    kind = ""
    layer_dirname = ""

    def __init__(self, store: "Store"):
        self.store = store

    # -- per driver
    def init_mutable(self, m: "Mutable") -> None: raise NotImplementedError
    def mount_mutable(self, m: "Mutable") -> Path: raise NotImplementedError
    def unmount_mutable(self, m: "Mutable") -> None: raise NotImplementedError
    def commit_mutable(self, m: "Mutable") -> list[Change]: raise NotImplementedError
    def view(self, sid: str) -> AbstractContextManager[Path]: raise NotImplementedError

    def discard_mutable(self, m: "Mutable") -> None:
        """Forget per-mutable state (its directory is removed by the store)."""

    def forget(self) -> None:
        """Drop per-process caches (snapshots were removed)."""

    # -- shared
    def layer_root(self, sid: str) -> Path:
        """The directory holding layer sid's changed entries at their paths."""
        return self.store.snapshot_dir(sid) / self.layer_dirname

    def build_layer(self, sdir: Path, src: Path, changes: list[Change]) -> None:
        """Write a computed diff's content (a snapshot without parent) into sdir."""
        write_layer_dir(src, sdir / self.layer_dirname, changes)

    def build_tree(self, dest: Path, chain: list[str]) -> None:
        """Apply a chain of layers onto the empty directory dest (the merge engine)."""
        try:
            from llb.snapshot.merge import apply_layers
        except ImportError as e:
            raise NotImplementedError("the merge engine (snapshot.merge.apply_layers) is "
                                      "not available yet") from e
        make_root(dest)
        apply_layers(dest, self.store._layers(chain))

    def ensure_tree(self, sid: str) -> Path:
        """`<snapshot>/tree`, materialised from the snapshot's chain if it is not there yet
        (built in a temporary and renamed in, so a crash never leaves half a tree)."""
        final = self.store.snapshot_dir(sid) / "tree"
        if final.is_dir():
            return final
        tmp = self.store.new_temp("tree")
        try:
            self.build_tree(tmp, self.store._chain(sid))
            publish_cache(tmp, final)
        finally:
            remove_tree(tmp)
        return final


def make_root(path: Path) -> None:
    """An empty tree's root: mode 0755 whatever the process umask."""
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)


def publish_cache(tmp: Path, final: Path) -> None:
    """Rename a finished cache directory into a committed snapshot; losing a race to an
    identical one is fine."""
    try:
        os.rename(tmp, final)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise


def make_driver(store: "Store") -> Driver:
    if store.kind == "overlayfs":
        from llb.snapshot.overlay import OverlayDriver
        return OverlayDriver(store)
    from llb.snapshot.native import NativeDriver
    return NativeDriver(store)
