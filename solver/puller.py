"""Images for the solver: resolving a registry reference or an OCI layout entry to one
platform's image (manifest and config in the content store), and reading its layer blobs
when the snapshot store unpacks a lazy layer (the store's BlobOpener). One per Solver; the
content store, the registry client and the layouts are opened on first use, so a solve
without images loads none of them.

A pulled layer's origin (kept by the snapshot store, handed back here) is
"VERTEX docker-image://REGISTRY/REPOSITORY@ROOT" or "VERTEX oci-layout://PATH@ROOT": the
image source vertex that byte progress is reported for ("-" when unknown), and where its
blob is read from."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

from llb.ops import SCHEME_IMAGE, SCHEME_OCI_LAYOUT
from llb.records import Record
from llb.snapshot import Ref, Store
from llb.snapshot.blobs import BlobRecord, Reader
from llb.snapshot.errors import BlobRetryError, LayerError
from llb.solver.errors import InputError
from llb.solver.progress import Progress

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Iterator, Sequence
    from llb.content.follow import BlobFollower
    from llb.content.layout import OCILayout
    from llb.content.platforms import Platform
    from llb.content.registry import RegistryClient
    from llb.content.resolve import Resolved
    from llb.content.store import ContentStore

if TYPE_CHECKING:
    BlobProgress = Callable[[str, int, int], None]

_PROGRESS_EVERY = 0.1  # seconds between two progress events of one blob


class Origin(Record):
    """Where a pulled layer's blob is read from (see the module docstring)."""

    scheme: str     # "docker-image" or "oci-layout"
    location: str   # REGISTRY/REPOSITORY, or the layout's path
    root: str       # the digest the image was pinned to
    vertex: str     # the image source's digest ("" when unknown)

    def __str__(self) -> str:
        return f"{self.vertex or '-'} {self.scheme}://{self.location}@{self.root}"

    @classmethod
    def parse(cls, text: str) -> "Origin":
        vertex, _, head = text.partition(" ")
        vertex = "" if vertex == "-" else vertex
        scheme, sep, rest = head.partition("://")
        location, _, root = rest.rpartition("@")
        if not sep or scheme not in (SCHEME_IMAGE, SCHEME_OCI_LAYOUT) or not location:
            raise InputError(f"a pulled layer's origin {text[:120]!r} is not one llb wrote")
        return cls(scheme, location, root, vertex)


class _Stop(threading.Event):
    """Reads as set once any of the solve's cancel event, the puller's closing or a
    follower's reader leaving early says to stop a download."""

    def __init__(self, cancelled: threading.Event | None, closing: threading.Event,
                 follower: BlobFollower):
        super().__init__()
        self._cancelled = cancelled
        self._closing = closing
        self._follower = follower

    def is_set(self) -> bool:
        return (super().is_set() or self._closing.is_set() or self._follower.abandoned
                or (self._cancelled is not None and self._cancelled.is_set()))


class Puller:
    """Resolves images and reads their blobs for one solver (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *, insecure: Sequence[str] = (),
                 progress: Progress | None = None):
        self.root = os.fspath(root)
        self.insecure = tuple(insecure)
        self.progress = progress
        self.cancelled: threading.Event | None = None  # the running solve's
        self.describe: Callable[[str], tuple[str, int]] | None = None  # vertex -> name, index
        self._content: ContentStore | None = None
        self._client: RegistryClient | None = None
        self._layouts: dict[str, OCILayout] = {}
        # (identifier, platform) -> the digest a tag resolved to in this solve: the snapshot
        # is made of what the key was computed from, and the registry is asked once
        self.pinned: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._layout_lock = threading.Lock()
        self._prefetching: set[str] = set()  # digests a background fetch has in hand
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()  # set by close(): background fetches stop  # a layout tar is read by one thread at a time

    # ------------------------------------------------------------------ opened on first use

    @property
    def content(self) -> ContentStore:
        """The root's content store."""
        with self._lock:
            if self._content is None:
                from pathlib import Path

                from llb.content.store import ContentStore

                self._content = ContentStore(Path(self.root))
            return self._content

    def client(self) -> RegistryClient:
        """The registry client (plain HTTP for loopback and the `insecure` registries)."""
        content = self.content
        with self._lock:
            if self._client is None:
                from llb.content.registry import RegistryClient

                self._client = RegistryClient(content, insecure=self.insecure)
            return self._client

    def layout(self, path: str) -> OCILayout:
        """The OCI layout (directory or tar) at path, read once per solver."""
        with self._lock:
            found = self._layouts.get(path)
            if found is None:
                from llb.content.layout import OCILayout

                found = self._layouts[path] = OCILayout(path)
            return found

    def begin(self) -> None:
        """A new solve: tags are resolved again, layouts read again (they may have moved)."""
        with self._lock:
            self.pinned.clear()
            for layout in self._layouts.values():
                layout.close()
            self._layouts = {}

    def close(self) -> None:
        """Close what was opened (connections, layout tars, the content store's session),
        once background fetches have stopped."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            if self._client is not None:
                self._client.close()
            for layout in self._layouts.values():
                layout.close()
            if self._content is not None:
                self._content.close()
            self._client, self._content, self._layouts = None, None, {}

    # ------------------------------------------------------------------ resolving

    def resolve_registry(self, ref: str, platform: Platform | None) -> Resolved:
        """The image `ref` names for `platform` (default: the host's), its manifest and
        config stored (a pinned ref whose blobs are stored needs no network)."""
        return self.client().resolve(ref, platform)

    def resolve_layout(self, path: str, tag: str | None, digest: str | None,
                       platform: Platform | None) -> Resolved:
        """The image of an OCI layout by tag or digest, its manifest, config (and index)
        copied into the content store (so a resolver finds them there next time)."""
        layout = self.layout(path)
        with self._layout_lock:
            resolved = layout.resolve(tag=tag, digest=digest, platform=platform)
            descs = [resolved.root, resolved.descriptor, resolved.manifest.config]
            layout.copy_to(self.content, {d.digest: d for d in descs}.values())
        return resolved

    def add_layers(self, store: Store, resolved: Resolved, origin: Origin) -> Ref | None:
        """The image's layers as lazy snapshots (nothing downloaded); None for an image
        without layers. A layer of a media type llb cannot unpack is refused here."""
        from llb.content import mediatypes as mt
        from llb.content.errors import UnsupportedMediaTypeError

        blobs = []
        for desc, diff_id in zip(resolved.layers, resolved.config.diff_ids):
            if not mt.is_layer(desc.media_type):
                why = mt.refused_reason(desc.media_type) or "not a layer type llb can unpack"
                raise UnsupportedMediaTypeError(f"{resolved.name}: layer {desc.digest} has "
                                                f"media type {desc.media_type[:100]!r}: {why}")
            blobs.append(BlobRecord(desc.digest, desc.size, desc.media_type, diff_id))
        keep = [resolved.root.digest, resolved.descriptor.digest, resolved.manifest.config.digest]
        return store.add_image_layers(None, blobs, str(origin), keep=list(dict.fromkeys(keep)))

    # ------------------------------------------------------------------ the BlobOpener

    @contextmanager
    def open(self, origin: str, blob: BlobRecord) -> Iterator[Reader]:
        """The blob's bytes for an unpacker. A registry blob that is not stored (nor being
        fetched in the background) is read as it downloads (content.follow: the download
        stores it and checks its digest and size before the reader sees its end); any
        other is fetched first, then read from the content store without hashing it again
        (the unpacker checks the layer's diff_id). When the block fails with a LayerError
        after reading a stored copy, that copy is checked: a corrupt one is removed and
        BlobRetryError raised (the store unpacks again, downloading it); so is a download
        whose bytes changed under the reader. A download the block fails on before its
        end is seen through first (BlobFollower.drain): were those bytes the blob's? (What
        a resumed download starts with was never checked.)"""
        from llb.content.errors import BlobChangedError

        content = self.content
        where = Origin.parse(origin)
        with self._lock:
            stream = (where.scheme == SCHEME_IMAGE and blob.digest not in self._prefetching
                      and not content.exists(blob.digest))
        follower = None
        reader: Reader
        if stream:
            follower = reader = self._follow(where, blob)
        else:
            self.fetch(origin, [blob])
            reader = content.open_unverified(blob.digest, blob.size)
        try:
            yield reader
            if follower is not None:  # to the verified end (an unpacker may stop short of
                while follower.read(1 << 20):  # it), then the blob published too: their
                    pass                        # errors are this one's
                follower.stored()
        except LayerError:
            if follower is not None and not follower.from_store:
                if not (follower.ended or follower.drain()):
                    raise BlobRetryError(f"blob {blob.digest}: the bytes the unpack failed "
                                         "on were not the blob's; it is read again") from None
            elif not content.check(blob.digest, blob.size):
                raise BlobRetryError(f"blob {blob.digest} in the content store was corrupt "
                                     "(removed); it is read again") from None
            raise
        except BlobChangedError as e:
            raise BlobRetryError(str(e)) from None
        finally:
            if follower is not None:
                follower.close()
            else:
                reader.close()

    def _follow(self, where: Origin, blob: BlobRecord) -> BlobFollower:
        """Start downloading the blob into the content store in a thread of its own; the
        returned follower reads its bytes as they are stored. The download stops when the
        solve is cancelled, the puller closed, or the follower closed before the end (what
        arrived stays for a resume)."""
        from llb.content.descriptor import Descriptor
        from llb.content.follow import BlobFollower
        from llb.content.reference import Reference

        follower = BlobFollower(self.content, blob.digest, blob.size)
        ref = Reference.parse(f"{where.location}@{where.root}")
        desc = Descriptor(blob.media_type, blob.digest, blob.size)
        client = self.client()
        report = self._reporter(where.vertex, None)
        stop = _Stop(self.cancelled, self._stop, follower)

        def run() -> None:
            try:
                client.fetch_blob(ref, desc, progress=report, cancelled=stop, follow=follower)
                follower.finish()
            except BaseException as e:  # noqa: BLE001 - the follower's reader raises it
                follower.fail(e)

        thread = threading.Thread(target=run, name="llb-download", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return follower

    def fetch(self, origin: str, blobs: Sequence[BlobRecord],
              progress: BlobProgress | None = None) -> None:
        """Put the blobs into the content store: downloaded (resumable, verified, several
        at once) or copied from the layout; byte progress reported for the origin's
        vertex, and to `progress` when given."""
        self._fetch(origin, blobs, progress, self.cancelled)

    def _fetch(self, origin: str, blobs: Sequence[BlobRecord], progress: BlobProgress | None,
               cancelled: threading.Event | None) -> None:
        from llb.content.descriptor import Descriptor

        content = self.content
        todo = [b for b in blobs if not content.exists(b.digest)]
        for b in blobs:
            if b not in todo:
                content.lease(b.digest, content.session_holder)
        if not todo:
            return
        where = Origin.parse(origin)
        descs = [Descriptor(b.media_type, b.digest, b.size) for b in todo]
        report = self._reporter(where.vertex, progress)
        if where.scheme == SCHEME_IMAGE:
            from llb.content.reference import Reference

            ref = Reference.parse(f"{where.location}@{where.root}")
            self.client().fetch_blobs(ref, descs, progress=report, cancelled=cancelled)
        else:
            layout = self.layout(where.location)
            with self._layout_lock:
                layout.copy_to(content, descs, progress=report)

    def prefetch(self, origin: str, blobs: Sequence[BlobRecord]) -> None:
        """Fetch these blobs in a background thread (several at once), while the store
        unpacks them in order: the first missing one is left to `open`, which reads it as
        it downloads; an `open` of a blob being fetched here waits for the fetch (the
        content store lets one writer have a blob). A failure here is dropped: the `open`
        that needs the blob fetches it again and reports its own error."""
        content = self.content
        with self._lock:
            missing = list({b.digest: b for b in blobs if b.digest not in self._prefetching
                            and not content.exists(b.digest)}.values())
            todo = missing[1:]  # the first is opened now: it is read as it downloads
            self._prefetching.update(b.digest for b in todo)
        if not todo:
            return

        def run() -> None:
            try:
                self._fetch(origin, todo, None, self._stop)
            except Exception:  # noqa: BLE001 - open() fetches again and says why
                pass
            finally:
                with self._lock:
                    self._prefetching.difference_update(b.digest for b in todo)

        thread = threading.Thread(target=run, name="llb-prefetch", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _reporter(self, vertex: str, extra: BlobProgress | None) -> BlobProgress:
        """A byte-progress callback emitting `progress` events for vertex (at most one per
        blob every _PROGRESS_EVERY seconds, and the last) and calling `extra`."""
        last: dict[str, float] = {}
        sink = self.progress
        name, index = ("", 0)
        if self.describe is not None and vertex:
            name, index = self.describe(vertex)

        def report(digest: str, current: int, total: int) -> None:
            if extra is not None:
                extra(digest, current, total)
            if sink is None or not vertex:
                return
            now = time.monotonic()
            if current < total and now - last.get(digest, 0.0) < _PROGRESS_EVERY:
                return
            last[digest] = now
            sink.emit("progress", vertex, name, index, id=digest, current=current, total=total)

        return report
