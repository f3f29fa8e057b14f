"""A client for the OCI distribution API, working out of a ContentStore: resolve a reference
to one platform's manifest and config; fetch blobs verified and resumable (a download that
stopped, in this process or a killed one, continues with a Range request), several in
parallel, with byte progress; push blobs (HEAD first, cross-repository mount where the
registry allows, monolithic or chunked upload) and manifests.

Everything fetched lands in the store, checked against the digest and size that name it;
a pinned reference whose manifest and config are already stored needs no network."""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

import httpx

from llb.content import mediatypes as mt
from llb.content.auth import repository_scope
from llb.content.credentials import CredentialSource, DockerCredentials
from llb.content.descriptor import Descriptor
from llb.content.digest import sha256_digest
from llb.content.errors import (BlobNotFoundError, ConnectionLostError, ContentError,
                                DigestMismatchError, InvalidManifestError, ServerError,
                                TransferCancelledError)
from llb.content.manifest import MAX_MANIFEST_SIZE, parse_manifest
from llb.content.platforms import Platform, host_platform
from llb.content.progress import OptionalProgress, report
from llb.content.reference import Reference
from llb.content.resolve import Resolved, resolve_image, walk_image
from llb.content.store import ContentStore, Ingest, IngestTap
from llb.content.transport import DEFAULT_TIMEOUT, Transport
from llb.resource import Closeable

_CHUNK = 1 << 20
DEFAULT_WORKERS = 4
DEFAULT_RETRIES = 3

# repositories to try a cross-repository mount from: for every blob, or by blob digest
MountSources = Union[Sequence[Reference], Mapping[str, Sequence[Reference]]]
Runner = Callable[[Descriptor, threading.Event], None]


class RegistryClient(Closeable):
    """Pulls from and pushes to registries through a content store. `insecure` names the
    registries spoken to over plain HTTP (loopback always is); `timeout` bounds every
    connect and every wait for data, so a hanging registry is a RegistryTimeoutError."""

    def __init__(self, store: ContentStore, *, credentials: CredentialSource | None = None,
                 insecure: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT,
                 platform: Platform | None = None, workers: int = DEFAULT_WORKERS,
                 retries: int = DEFAULT_RETRIES):
        self.store = store
        self.platform = (platform or host_platform()).normalized()
        self.workers = max(1, workers)
        self.retries = max(0, retries)
        creds = credentials if credentials is not None else DockerCredentials.load()
        self.transport = Transport(creds, insecure=insecure, timeout=timeout)

    def close(self) -> None:
        """Close pooled connections."""
        self.transport.close()

    # -- pulling ---------------------------------------------------------------------------

    def resolve(self, ref: str | Reference, platform: Platform | None = None) -> Resolved:
        """The manifest and config of `platform`'s image (default: the client's, i.e. the
        host's) that `ref` names, all stored. Pin the result with `resolved.root.digest`."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        root = self._root(ref)
        return resolve_image(str(ref), root, lambda d: self._small_blob(ref, d),
                             (platform or self.platform).normalized())

    def fetch_manifest(self, ref: str | Reference) -> tuple[Descriptor, bytes]:
        """The descriptor and bytes of what `ref` names (index or manifest), stored."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        root = self._root(ref)
        return root, self.store.read(root.digest, root.size, limit=MAX_MANIFEST_SIZE)

    def fetch_blob(self, ref: str | Reference, desc: Descriptor, *,
                   progress: OptionalProgress = None,
                   cancelled: threading.Event | None = None,
                   follow: IngestTap | None = None) -> None:
        """Make sure the blob is in the store: download it from `ref`'s repository, resuming
        a partial download, verified against `desc`'s digest and size. A resumed download
        that does not verify is fetched once more from the start. `follow` is told of
        every byte as it is stored (content.follow.BlobFollower: a reader unpacking the
        blob as it arrives)."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        for attempt in (1, 2):
            with self.store.ingest(desc.digest, desc.size, cancelled=cancelled) as writer:
                if writer.exists:
                    report(progress, desc.digest, desc.size, desc.size)
                    return
                if follow is not None:
                    writer.follow(follow)
                resumed = writer.offset > 0
                try:
                    self._fill(ref, desc, writer, progress, cancelled)
                    writer.commit()
                    return
                except DigestMismatchError:
                    writer.discard()  # what arrived is not this blob: keep none of it
                    if not resumed or attempt == 2:
                        raise

    def _fill(self, ref: Reference, desc: Descriptor, writer: Ingest,
              progress: OptionalProgress, cancelled: threading.Event | None) -> None:
        """Download until the writer holds `desc.size` bytes, resuming after a broken
        connection or a body that ended early (at most `retries` times)."""
        failures = 0
        while writer.written < desc.size:
            try:
                self._download(ref, desc, writer.written, writer, progress, cancelled)
            except ConnectionLostError:
                failures += 1
                if failures > self.retries:
                    raise
                continue
            if writer.written < desc.size:
                failures += 1  # the server ended the body early
                if failures > self.retries:
                    raise ConnectionLostError(f"blob {desc.digest} of {ref.name}: registry "
                                              f"{ref.registry} sent {writer.written} of "
                                              f"{desc.size} bytes")

    def fetch_blobs(self, ref: str | Reference, descs: Iterable[Descriptor], *,
                    progress: OptionalProgress = None,
                    cancelled: threading.Event | None = None) -> None:
        """fetch_blob for several blobs, `workers` at a time; the first failure stops the
        others (their partial downloads stay for a resume) and is raised."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        unique = list({d.digest: d for d in descs}.values())
        self._parallel(unique, lambda d, stop: self.fetch_blob(ref, d, progress=progress,
                                                               cancelled=stop), cancelled)

    def blob_exists(self, ref: str | Reference, digest: str) -> bool:
        """True if `ref`'s repository has the blob (HEAD)."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        r = self.transport.request("HEAD", ref.registry, f"/v2/{ref.repository}/blobs/{digest}",
                                   scopes=self._pull(ref), what=f"blob {digest} of {ref.name}",
                                   ok=(200, 404))
        return r.status_code == 200

    # -- pushing ---------------------------------------------------------------------------

    def push_blob(self, ref: str | Reference, desc: Descriptor, *,
                  mount_from: Sequence[Reference] = (), chunk_size: int | None = None,
                  progress: OptionalProgress = None) -> str:
        """Make sure `ref`'s repository has the blob: "exists" when it had it (HEAD),
        "mounted" when a cross-repository mount from one of `mount_from` (same registry)
        gave it, "uploaded" when its bytes were sent from the store (in one PUT, or in
        PATCH chunks of `chunk_size` bytes)."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        sources = [m for m in mount_from if m.registry == ref.registry
                   and m.repository != ref.repository]
        scopes = self._push(ref) + tuple(repository_scope(m.repository, "pull") for m in sources)
        what = f"blob {desc.digest} to {ref.name}"
        head = self.transport.request("HEAD", ref.registry,
                                      f"/v2/{ref.repository}/blobs/{desc.digest}",
                                      scopes=scopes, what=what, ok=(200, 404))
        if head.status_code == 200:
            report(progress, desc.digest, desc.size, desc.size)
            return "exists"
        local = self.store.exists(desc.digest)
        location = None
        for source in sources:
            r = self.transport.request(
                "POST", ref.registry, f"/v2/{ref.repository}/blobs/uploads/?mount="
                f"{desc.digest}&from={source.repository}", scopes=scopes, what=what,
                ok=(201, 202), headers={"Content-Length": "0"})
            if r.status_code == 201:
                report(progress, desc.digest, desc.size, desc.size)
                return "mounted"
            location = self._location(ref, r, what)
            if not local:
                self._cancel_upload(ref, location, scopes, what)
                location = None
        if not local:
            raise BlobNotFoundError(f"{what}: the registry lacks it and it is not in the "
                                    "content store")
        if location is None:
            r = self.transport.request("POST", ref.registry,
                                       f"/v2/{ref.repository}/blobs/uploads/", scopes=scopes,
                                       what=what, ok=(202,), headers={"Content-Length": "0"})
            location = self._location(ref, r, what)
        if chunk_size:
            self._upload_chunked(ref, desc, location, scopes, what, chunk_size, progress)
        else:
            self._upload_monolithic(ref, desc, location, scopes, what, progress)
        return "uploaded"

    def push_blobs(self, ref: str | Reference, descs: Iterable[Descriptor], *,
                   mount_from: MountSources = (), chunk_size: int | None = None,
                   progress: OptionalProgress = None) -> dict[str, str]:
        """push_blob for several blobs, `workers` at a time: digest → what happened.
        `mount_from` is a list of repositories for every blob, or a map by digest."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        unique = list({d.digest: d for d in descs}.values())
        done: dict[str, str] = {}

        def one(desc: Descriptor, stop: threading.Event) -> None:
            if stop.is_set():
                return
            sources = (mount_from.get(desc.digest, ()) if isinstance(mount_from, Mapping)
                       else mount_from)
            done[desc.digest] = self.push_blob(ref, desc, mount_from=sources,
                                               chunk_size=chunk_size, progress=progress)

        self._parallel(unique, one, None)
        return done

    def push_manifest(self, ref: str | Reference, data: bytes, media_type: str,
                      tag: str | None = None) -> Descriptor:
        """Put a manifest or index under `tag` (or its digest when None); its descriptor."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        digest = sha256_digest(data)
        target = tag or digest
        what = f"manifest {target} to {ref.name}"
        r = self.transport.request("PUT", ref.registry,
                                   f"/v2/{ref.repository}/manifests/{target}",
                                   scopes=self._push(ref), what=what, ok=(201, 200),
                                   headers={"Content-Type": media_type}, body=data)
        said = r.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise ServerError(f"{what}: registry {ref.registry} stored it as {said}, "
                              f"not {digest}")
        return Descriptor(media_type, digest, len(data))

    def push_image(self, ref: str | Reference, root: Descriptor, *,
                   mount_from: MountSources = (), chunk_size: int | None = None,
                   progress: OptionalProgress = None) -> Descriptor:
        """Push a stored manifest or index with everything it references: blobs first
        (only those the registry lacks), then platform manifests by digest, then `root`
        under `ref`'s tag (or its digest). Returns `root` as pushed."""
        ref = Reference.parse(ref) if isinstance(ref, str) else ref
        manifests_first = walk_image(str(ref), root, lambda d: self.store.read(
            d.digest, d.size, limit=MAX_MANIFEST_SIZE))
        is_manifest = [mt.is_manifest(d.media_type) or mt.is_index(d.media_type)
                       for d in manifests_first]
        self.push_blobs(ref, [d for d, m in zip(manifests_first, is_manifest) if not m],
                        mount_from=mount_from, chunk_size=chunk_size, progress=progress)
        for desc, m in zip(manifests_first, is_manifest):
            if m and desc.digest != root.digest:
                self.push_manifest(ref, self.store.read(desc.digest, desc.size,
                                                        limit=MAX_MANIFEST_SIZE),
                                   desc.media_type)
        data = self.store.read(root.digest, root.size, limit=MAX_MANIFEST_SIZE)
        tag = ref.tag if not ref.digest or ref.tag else None
        return self.push_manifest(ref, data, root.media_type, tag)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _pull(ref: Reference) -> tuple[str, ...]:
        return (repository_scope(ref.repository, "pull"),)

    @staticmethod
    def _push(ref: Reference) -> tuple[str, ...]:
        return (repository_scope(ref.repository, "pull", "push"),)

    def _root(self, ref: Reference) -> Descriptor:
        """The descriptor of what `ref` names, its bytes stored (no request when `ref` is
        pinned and the store has them)."""
        if ref.digest and self.store.exists(ref.digest):
            data = self.store.read(ref.digest, limit=MAX_MANIFEST_SIZE)
            parsed = parse_manifest(data, f"{ref}: manifest {ref.digest}")
            return Descriptor(parsed.media_type, ref.digest, len(data))
        what = f"manifest {ref.object} of {ref.name}"
        data, media_type = self._get_manifest(ref, ref.object, what)
        digest = sha256_digest(data)
        parsed = parse_manifest(data, what, media_type=media_type)
        self.store.put(data, digest)
        return Descriptor(parsed.media_type, digest, len(data))

    def _get_manifest(self, ref: Reference, target: str, what: str) -> tuple[bytes, str]:
        with self.transport.stream("GET", ref.registry,
                                   f"/v2/{ref.repository}/manifests/{target}",
                                   scopes=self._pull(ref), what=what,
                                   headers={"Accept": mt.MANIFEST_ACCEPT}) as r:
            data = self._read_limited(r, ref, what)
            got = sha256_digest(data)
            if target.startswith("sha256:") and got != target:
                raise DigestMismatchError(f"{what}: digest mismatch: got {got}")
            said = r.headers.get("Docker-Content-Digest", "")
            if said.startswith("sha256:") and said != got:
                raise DigestMismatchError(f"{what}: digest mismatch: got {got}, registry "
                                          f"{ref.registry} says {said}")
            return data, r.headers.get("Content-Type", "")

    def _read_limited(self, r: httpx.Response, ref: Reference, what: str) -> bytes:
        parts: list[bytes] = []
        total = 0
        try:
            for chunk in r.iter_bytes():
                total += len(chunk)
                if total > MAX_MANIFEST_SIZE:
                    raise InvalidManifestError(f"{what}: more than {MAX_MANIFEST_SIZE} bytes")
                parts.append(chunk)
        except httpx.HTTPError as e:
            raise self.transport.error(e, ref.registry, what) from None
        return b"".join(parts)

    def _small_blob(self, ref: Reference, desc: Descriptor) -> bytes:
        """A manifest or config, from the store or else the registry (then stored)."""
        if self.store.exists(desc.digest):
            return self.store.read(desc.digest, desc.size, limit=MAX_MANIFEST_SIZE)
        if desc.size > MAX_MANIFEST_SIZE * 2:
            raise InvalidManifestError(f"{ref}: {desc.digest} claims {desc.size} bytes, too "
                                       "many for a manifest or config")
        what = f"{desc.digest} of {ref.name}"
        if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type):
            data, _ = self._get_manifest(ref, desc.digest, f"manifest {what}")
            self.store.put(data, desc.digest)
        else:
            self.fetch_blob(ref, desc)
        return self.store.read(desc.digest, desc.size, limit=MAX_MANIFEST_SIZE * 2)

    def _download(self, ref: Reference, desc: Descriptor, offset: int, writer: Ingest,
                  progress: OptionalProgress, cancelled: threading.Event | None) -> None:
        """One GET of the blob from `offset` on, appended to `writer`."""
        what = f"blob {desc.digest} of {ref.name}"
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.transport.stream("GET", ref.registry,
                                   f"/v2/{ref.repository}/blobs/{desc.digest}",
                                   scopes=self._pull(ref), what=what, ok=(200, 206),
                                   headers=headers) as r:
            if r.status_code == 206:
                _check_range(r.headers.get("Content-Range", ""), offset, desc, what)
            else:
                if offset:
                    writer.reset()  # the server ignored the range: start again
                length = r.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) != desc.size:
                    raise DigestMismatchError(f"{what}: registry {ref.registry} sends {length} "
                                              f"bytes, the descriptor says {desc.size}")
            report(progress, desc.digest, writer.written, desc.size)
            try:
                for chunk in r.iter_bytes():
                    if cancelled is not None and cancelled.is_set():
                        raise TransferCancelledError(f"{what}: cancelled")
                    writer.write(chunk)
                    report(progress, desc.digest, writer.written, desc.size)
            except httpx.HTTPError as e:
                raise self.transport.error(e, ref.registry, what) from None

    def _location(self, ref: Reference, r: httpx.Response, what: str) -> str:
        location = r.headers.get("Location")
        if not location:
            raise ServerError(f"{what}: registry {ref.registry} gave no upload location")
        return str(httpx.URL(self.transport.url(ref.registry, "/")).join(location))

    def _cancel_upload(self, ref: Reference, location: str, scopes: tuple[str, ...],
                       what: str) -> None:
        try:
            self.transport.request("DELETE", ref.registry, location, scopes=scopes, what=what,
                                   ok=(202, 204, 404))
        except ContentError:
            pass  # the registry expires abandoned uploads itself

    def _upload_monolithic(self, ref: Reference, desc: Descriptor, location: str,
                           scopes: tuple[str, ...], what: str,
                           progress: OptionalProgress) -> None:
        def body() -> Iterator[bytes]:
            sent = 0
            report(progress, desc.digest, 0, desc.size)
            with self.store.open(desc.digest, desc.size) as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        return
                    sent += len(chunk)
                    yield chunk
                    report(progress, desc.digest, sent, desc.size)

        url = str(httpx.URL(location).copy_merge_params({"digest": desc.digest}))
        r = self.transport.request("PUT", ref.registry, url, scopes=scopes, what=what,
                                   ok=(201, 204), body=body,
                                   headers={"Content-Type": "application/octet-stream",
                                            "Content-Length": str(desc.size)})
        _check_pushed(r, desc, ref, what)

    def _upload_chunked(self, ref: Reference, desc: Descriptor, location: str,
                        scopes: tuple[str, ...], what: str, chunk_size: int,
                        progress: OptionalProgress) -> None:
        sent = 0
        report(progress, desc.digest, 0, desc.size)
        with self.store.open(desc.digest, desc.size) as f:
            while sent < desc.size:
                data = f.read(min(chunk_size, desc.size - sent))
                if not data:
                    raise DigestMismatchError(f"{what}: the stored blob is shorter than "
                                              f"{desc.size} bytes")
                r = self.transport.request(
                    "PATCH", ref.registry, location, scopes=scopes, what=what, ok=(202, 204),
                    body=data, headers={"Content-Type": "application/octet-stream",
                                        "Content-Range": f"{sent}-{sent + len(data) - 1}",
                                        "Content-Length": str(len(data))})
                location = self._location(ref, r, what)
                sent += len(data)
                report(progress, desc.digest, sent, desc.size)
            f.read()  # reaching the end verifies the stored bytes
        url = str(httpx.URL(location).copy_merge_params({"digest": desc.digest}))
        r = self.transport.request("PUT", ref.registry, url, scopes=scopes, what=what,
                                   ok=(201, 204), headers={"Content-Length": "0"}, body=b"")
        _check_pushed(r, desc, ref, what)

    def _parallel(self, items: list[Descriptor], run: Runner,
                  cancelled: threading.Event | None) -> None:
        """Run `run(item, stop)` for every item on the worker pool; the first failure sets
        `stop` for the rest and is raised once all have stopped."""
        if not items:
            return
        stop = _Stop(cancelled)
        if len(items) == 1 or self.workers == 1:
            for item in items:
                run(item, stop)
            return
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)),
                                thread_name_prefix="llb-registry") as pool:
            futures = [pool.submit(run, item, stop) for item in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                stop.set()
            wait(futures)
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, TransferCancelledError)),
                       errors[0])


class _Stop(threading.Event):
    """Set by the pool when a sibling failed; also reads as set once the caller's own
    `cancelled` event is."""

    def __init__(self, parent: threading.Event | None):
        super().__init__()
        self._parent = parent

    def is_set(self) -> bool:
        return super().is_set() or (self._parent is not None and self._parent.is_set())


def _check_range(content_range: str, offset: int, desc: Descriptor, what: str) -> None:
    """A 206's `Content-Range: bytes START-END/TOTAL` must continue where we stopped."""
    try:
        unit, _, spec = content_range.partition(" ")
        span, _, total = spec.partition("/")
        start = int(span.split("-", 1)[0])
        ok = unit == "bytes" and start == offset and (total == "*" or int(total) == desc.size)
    except ValueError:
        ok = False
    if not ok:
        raise ServerError(f"{what}: bad Content-Range {content_range[:60]!r} for a download "
                          f"resumed at byte {offset}")


def _check_pushed(r: httpx.Response, desc: Descriptor, ref: Reference, what: str) -> None:
    said = r.headers.get("Docker-Content-Digest")
    if said and said != desc.digest:
        raise ServerError(f"{what}: registry {ref.registry} stored it as {said}")

