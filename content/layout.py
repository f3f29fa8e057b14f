"""OCI image layouts (image-spec `image-layout.md`): `oci-layout`, `index.json` whose entries
name images by `org.opencontainers.image.ref.name`, and `blobs/sha256/<hex>`.

Reading: a layout directory or a tar of one (as `skopeo copy ... oci-archive:` writes),
an image found by tag or digest, resolved to a platform like a registry image, its blobs
read verified or copied into the content store. Writing: a layout directory (created, or
added to: entries with the same ref name are replaced) or a deterministic tar of one, with
every blob the images need taken from the content store."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

from llb.content import mediatypes as mt
from llb.content.descriptor import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor
from llb.content.digest import check_digest, digest_hex
from llb.errors import is_no_space
from llb.content.errors import (ContentError, DigestMismatchError, InvalidDigestError,
                                LayoutError)
from llb.content.jsondoc import canonical_json, load_json
from llb.content.manifest import MAX_MANIFEST_SIZE, Index, parse_manifest
from llb.content.platforms import Platform, host_platform
from llb.content.progress import OptionalProgress, report
from llb.content.reader import BlobReader
from llb.content.resolve import Resolved, resolve_image, walk_image
from llb.content.store import ContentStore
from llb.resource import Closeable

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
_CHUNK = 1 << 20


def tagged(desc: Descriptor, tag: str, image_name: str | None = None) -> Descriptor:
    """An index.json entry for `desc` named `tag` (ref.name), with the image's full name in
    `io.containerd.image.name` when given (as BuildKit writes both)."""
    annotations = {ANNOTATION_REF_NAME: tag}
    if image_name:
        annotations[ANNOTATION_IMAGE_NAME] = image_name
    return desc.with_annotations(annotations)


class OCILayout(Closeable):
    """An OCI image layout to read, from a directory or a (possibly compressed) tar."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if self.path.is_dir():
            pass
        elif self.path.is_file():
            try:
                self._tar = tarfile.open(self.path, "r:*")
                for m in self._tar.getmembers():
                    self._members[os.path.normpath(m.name.lstrip("/"))] = m
            except (tarfile.TarError, EOFError, OSError) as e:
                raise LayoutError(f"{self.path}: not a readable tar ({e})",
                                  path=str(self.path)) from None
        else:
            raise LayoutError(f"{self.path}: no such OCI layout directory or tar",
                              path=str(self.path))
        version = self._json(LAYOUT_FILE, 4096)
        if not isinstance(version, dict) or version.get("imageLayoutVersion") != LAYOUT_VERSION:
            raise LayoutError(f"{self.path}: {LAYOUT_FILE} does not say imageLayoutVersion "
                              f"{LAYOUT_VERSION}", path=str(self.path))
        what = f"{self.path}: {INDEX_FILE}"
        index = parse_manifest(self._read(INDEX_FILE, MAX_MANIFEST_SIZE), what,
                               media_type=mt.OCI_INDEX)
        if not isinstance(index, Index):
            raise LayoutError(f"{what}: not an image index", path=str(self.path))
        self.index = index

    def close(self) -> None:
        """Close the tar, if the layout is one."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def names(self) -> list[str]:
        """The ref names (tags) in index.json."""
        return [d.annotations[ANNOTATION_REF_NAME] for d in self.index.manifests
                if ANNOTATION_REF_NAME in d.annotations]

    def find(self, tag: str | None = None, digest: str | None = None) -> Descriptor:
        """The descriptor of the image named `tag` (its ref name, or the full image name),
        or of `digest` (an index.json entry or any manifest blob in the layout); with
        neither, the layout's only image. LayoutError when there is no such image."""
        entries = self.index.manifests
        if digest is not None:
            try:
                check_digest(digest)
            except InvalidDigestError as e:
                raise LayoutError(str(e), path=str(self.path)) from None
            for d in entries:
                if d.digest == digest:
                    return d
            data = self._read(_blob_name(digest), MAX_MANIFEST_SIZE)
            parsed = parse_manifest(data, f"{self.path}: manifest {digest}")
            return Descriptor(parsed.media_type, digest, len(data))
        if tag is not None:
            for d in entries:
                if tag in (d.annotations.get(ANNOTATION_REF_NAME),
                           d.annotations.get(ANNOTATION_IMAGE_NAME)):
                    return d
            raise LayoutError(f"{self.path}: no image tagged {tag!r} (it has: "
                              f"{', '.join(self.names()) or 'no tags'})", path=str(self.path))
        if len(entries) != 1:
            raise LayoutError(f"{self.path}: holds {len(entries)} images: name a tag or "
                              "digest", path=str(self.path))
        return entries[0]

    def resolve(self, tag: str | None = None, digest: str | None = None,
                platform: Platform | None = None) -> Resolved:
        """The manifest and config of `platform`'s image (default: the host's)."""
        root = self.find(tag, digest)
        return resolve_image(f"{self.path}", root, self.read_blob,
                             (platform or host_platform()).normalized())

    def blobs(self, root: Descriptor) -> list[Descriptor]:
        """Every blob the image `root` needs (see resolve.walk_image)."""
        return walk_image(str(self.path), root, self.read_blob)

    def open_blob(self, desc: Descriptor) -> BlobReader:
        """The blob, verified against `desc` as it is read."""
        name = _blob_name(desc.digest)
        what = f"{self.path}: blob {desc.digest}"
        raw, size = self._open(name)
        if size != desc.size:
            raw.close()
            raise DigestMismatchError(f"{what}: size mismatch: {size} bytes, expected "
                                      f"{desc.size}")
        return BlobReader(raw, desc.digest, desc.size, what)

    def read_blob(self, desc: Descriptor) -> bytes:
        """A small blob (manifest, config), verified."""
        if desc.size > MAX_MANIFEST_SIZE * 2:
            raise LayoutError(f"{self.path}: blob {desc.digest} is {desc.size} bytes, too "
                              "many for a manifest or config", path=str(self.path))
        with self.open_blob(desc) as r:
            data = r.read()
        assert isinstance(data, bytes)
        return data

    def copy_to(self, store: ContentStore, descs: Iterable[Descriptor],
                progress: OptionalProgress = None) -> None:
        """Put these blobs into the content store (verified; those present are skipped)."""
        for desc in descs:
            with store.ingest(desc.digest, desc.size) as w:
                if w.exists:
                    report(progress, desc.digest, desc.size, desc.size)
                    continue
                w.reset()
                try:
                    with self.open_blob(desc) as r:
                        while chunk := r.read(_CHUNK):
                            w.write(chunk)
                            report(progress, desc.digest, w.written, desc.size)
                except DigestMismatchError:
                    w.discard()  # the layout's copy is bad: keep none of it
                    raise
                w.commit()

    def _open(self, name: str) -> tuple[Any, int]:
        if self._tar is None:
            path = self.path / name
            try:
                f = io.FileIO(path, "r")
            except (FileNotFoundError, NotADirectoryError):
                raise LayoutError(f"{self.path}: no {name}", path=str(self.path)) from None
            return f, os.fstat(f.fileno()).st_size
        member = self._members.get(name)
        extracted = self._tar.extractfile(member) if member is not None else None
        if member is None or extracted is None:
            raise LayoutError(f"{self.path}: no {name}", path=str(self.path))
        return extracted, member.size

    def _read(self, name: str, limit: int) -> bytes:
        raw, size = self._open(name)
        try:
            if size > limit:
                raise LayoutError(f"{self.path}: {name} is {size} bytes, more than {limit}",
                                  path=str(self.path))
            data = raw.read(limit + 1)
        finally:
            raw.close()
        assert isinstance(data, bytes)
        return data

    def _json(self, name: str, limit: int) -> Any:
        def error(message: str) -> LayoutError:
            return LayoutError(message, path=str(self.path))

        return load_json(self._read(name, limit), f"{self.path}: {name}", error)


def write_layout(store: ContentStore, dest: Path | str, images: Sequence[Descriptor]) -> None:
    """Write these images (index.json entries: name them with `tagged`) and every blob they
    need into the layout directory `dest`, created if missing, added to if it is a layout
    (blobs present are kept; entries with the same ref name are replaced). index.json is
    replaced last and atomically, so a killed write never lists a missing blob."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise LayoutError(f"{dest}: exists and is not a directory", path=str(dest))
    if dest.is_dir() and any(dest.iterdir()) and not (dest / LAYOUT_FILE).exists():
        raise LayoutError(f"{dest}: not empty and not an OCI layout; not writing into it",
                          path=str(dest))
    blob_dir = dest / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for desc in _needed(store, images):
        target = blob_dir / digest_hex(desc.digest)
        if target.exists() and target.stat().st_size == desc.size:
            continue
        with store.open(desc.digest, desc.size) as r:
            _write_atomic(target, lambda f: _copy(r, f))
    entries = list(images)
    if (dest / INDEX_FILE).exists():
        names = {d.annotations.get(ANNOTATION_REF_NAME) for d in entries} - {None}
        old = OCILayout(dest) if (dest / LAYOUT_FILE).exists() else None
        if old is not None:
            entries = [d for d in old.index.manifests
                       if d.annotations.get(ANNOTATION_REF_NAME) not in names
                       and d not in entries] + entries
    if not (dest / LAYOUT_FILE).exists():
        layout = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        _write_atomic(dest / LAYOUT_FILE, lambda f: f.write(layout))
    index = Index(tuple(entries)).to_bytes()
    _write_atomic(dest / INDEX_FILE, lambda f: f.write(index))


def write_layout_tar(store: ContentStore, dest: Path | str | IO[bytes],
                     images: Sequence[Descriptor], *, mtime: int = 0,
                     extra: Mapping[str, bytes] | None = None) -> None:
    """A tar of an OCI layout of these images: entries sorted, owners 0, every timestamp
    `mtime` (pass SOURCE_DATE_EPOCH), so one set of images always makes the same bytes.
    `extra` adds documents at the top (a Docker archive's manifest.json). A path is written
    through a temporary file renamed into place; a file object (e.g. stdout) is written as
    it is."""
    documents = dict(extra or {})
    if not isinstance(dest, (str, Path)):
        _tar_to(dest, store, images, mtime, documents)
        return
    path = Path(dest)
    if path.is_dir():
        raise LayoutError(f"{path}: is a directory (give a file name for the tar)",
                          path=str(path))
    _write_atomic(path, lambda f: _tar_to(f, store, images, mtime, documents))


def _needed(store: ContentStore, images: Sequence[Descriptor]) -> list[Descriptor]:
    out: dict[str, Descriptor] = {}
    for image in images:
        for d in walk_image(f"image {image.digest}", image,
                            lambda d: store.read(d.digest, d.size, limit=MAX_MANIFEST_SIZE)):
            out.setdefault(d.digest, d)
    return sorted(out.values(), key=lambda d: d.digest)


def _tar_to(f: IO[bytes], store: ContentStore, images: Sequence[Descriptor],
            mtime: int, documents: dict[str, bytes]) -> None:
    blobs = _needed(store, images)
    documents[INDEX_FILE] = Index(tuple(images)).to_bytes()
    documents[LAYOUT_FILE] = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})

    def info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
        t = tarfile.TarInfo(name)
        t.size, t.mtime, t.uid, t.gid, t.uname, t.gname = size, mtime, 0, 0, "", ""
        t.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        t.mode = 0o755 if directory else 0o644
        return t

    with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info("blobs", directory=True))
        tar.addfile(info("blobs/sha256", directory=True))
        for desc in blobs:
            with store.open(desc.digest, desc.size) as r:
                tar.addfile(info(_blob_name(desc.digest), desc.size), r)
                r.read()  # reaching the end verifies the blob
        for path in sorted(documents):
            data = documents[path]
            tar.addfile(info(path, len(data)), io.BytesIO(data))


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _copy(r: BlobReader, f: IO[bytes]) -> None:
    while chunk := r.read(_CHUNK):
        f.write(chunk)


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through `path`.tmp-<id> and rename; a failure leaves no partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, ContentError) and not is_no_space(e):
            raise LayoutError(f"{path}: cannot write: {e.strerror or e}",
                              path=str(path)) from None
        raise
