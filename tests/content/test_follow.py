"""Reading a blob while its download stores it (content.follow.BlobFollower), against a real
registry behind a proxy that cuts, corrupts or ignores ranges: the reader gets every byte
exactly once and in order, sees the end only once the digest is checked, and gets an error
(never wrong bytes) when the download fails or starts again with other bytes. The blob is
stored as a download without a reader would store it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import pytest
from faultserver import Proxy
from registryhelp import Registry

from llb.content import mediatypes as mt
from llb.content.credentials import DockerCredentials
from llb.content.descriptor import Descriptor
from llb.content.errors import BlobChangedError, DigestMismatchError, TransferCancelledError
from llb.content.follow import BlobFollower
from llb.content.registry import RegistryClient
from llb.content.store import ContentStore

NO_CREDS = DockerCredentials({})


@pytest.fixture
def pushed(registry: Registry, tmp_path: Path) -> Iterator[tuple[bytes, Descriptor, str]]:
    """A 3 MiB random blob pushed to test/follow (its bytes, descriptor, repository)."""
    data = os.urandom(3 << 20)
    store = ContentStore(tmp_path / "pusher")
    try:
        info = store.put(data)
        desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
        with RegistryClient(store, credentials=NO_CREDS) as client:
            client.push_blob(f"{registry.host}/test/follow:v1", desc)
        yield data, desc, "test/follow:v1"
    finally:
        store.close()


@pytest.fixture
def puller(tmp_path: Path) -> Iterator[RegistryClient]:
    store = ContentStore(tmp_path / "puller")
    client = RegistryClient(store, credentials=NO_CREDS)
    yield client
    client.close()
    store.close()


def _follow(client: RegistryClient, ref: str, desc: Descriptor, *, limit: int = 256 << 10,
            cancelled: threading.Event | None = None) -> tuple[BlobFollower, threading.Thread]:
    """A follower of fetch_blob(ref, desc) running in a thread (as solver.puller runs it)."""
    follower = BlobFollower(client.store, desc.digest, desc.size, limit=limit)

    def run() -> None:
        try:
            client.fetch_blob(ref, desc, cancelled=cancelled, follow=follower)
            follower.finish()
        except BaseException as e:  # noqa: BLE001 - the reader raises it
            follower.fail(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return follower, thread


def _read_all(follower: BlobFollower, size: int = 100_000) -> bytes:
    parts = []
    while True:
        piece = follower.read(size)
        if not piece:
            return b"".join(parts)
        parts.append(bytes(piece))


def test_the_reader_gets_the_blob_as_it_is_stored(registry: Registry, pushed, puller) -> None:
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.throttle[desc.digest] = 0.001
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        first = bytes(follower.read(1000))
        assert first == data[:1000]
        assert not puller.store.exists(desc.digest)  # read before the download ended
        got = first + _read_all(follower)
        thread.join(30)
    finally:
        proxy.stop()
    assert got == data and not follower.from_store
    assert puller.store.read(desc.digest) == data
    assert os.listdir(puller.store.dir / "ingest") == []


def test_readinto_fills_a_buffer(registry: Registry, pushed, puller) -> None:
    data, desc, repo = pushed
    follower, thread = _follow(puller, f"{registry.host}/{repo}", desc)
    buf = bytearray(70_000)
    out = bytearray()
    while n := follower.readinto(buf):
        out += buf[:n]
    thread.join(30)
    assert bytes(out) == data


def test_a_cut_connection_resumes_without_repeating_bytes(registry: Registry, pushed,
                                                          puller) -> None:
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.cut[desc.digest] = 1_234_567
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        got = _read_all(follower)
        thread.join(30)
    finally:
        proxy.stop()
    assert [h.get("Range") for m, p, h in proxy.requests if m == "GET"] == [
        None, "bytes=1234567-"]
    assert got == data and puller.store.read(desc.digest) == data


def test_a_server_ignoring_the_range_sends_the_same_bytes_again(registry: Registry, pushed,
                                                                puller) -> None:
    """The download starts over from byte 0; what the reader had is checked against the
    bytes sent again (same digest) and only the rest is handed over."""
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.cut[desc.digest] = 1_000_001
    proxy.ignore_range.add(desc.digest)
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        got = _read_all(follower)
        thread.join(30)
    finally:
        proxy.stop()
    assert [m for m, p, h in proxy.requests if m == "GET"] == ["GET", "GET"]
    assert got == data and puller.store.read(desc.digest) == data


def test_a_partial_download_left_earlier_is_read_first(registry: Registry, pushed,
                                                       puller) -> None:
    data, desc, repo = pushed
    with puller.store.ingest(desc.digest, desc.size) as w:  # as a killed pull leaves it
        w.write(data[:700_000])
    proxy = Proxy(registry.host)
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        got = _read_all(follower)
        thread.join(30)
    finally:
        proxy.stop()
    assert [h.get("Range") for m, p, h in proxy.requests if m == "GET"] == ["bytes=700000-"]
    assert got == data


def test_a_restart_with_other_bytes_fails_the_reader(registry: Registry, pushed,
                                                     puller) -> None:
    """A partial of other bytes was handed out, the whole did not verify, the download
    started again: the reader gets BlobChangedError, never the wrong bytes as the blob;
    the store ends up with the right blob."""
    data, desc, repo = pushed
    with puller.store.ingest(desc.digest, desc.size) as w:
        w.write(os.urandom(5000))
    follower, thread = _follow(puller, f"{registry.host}/{repo}", desc)
    with pytest.raises(BlobChangedError, match="sent other bytes"):
        _read_all(follower)
    thread.join(30)
    assert puller.store.read(desc.digest) == data


def test_a_corrupt_download_fails_at_the_end_and_keeps_nothing(registry: Registry, pushed,
                                                               puller) -> None:
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.corrupt.add(desc.digest)
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        with pytest.raises(DigestMismatchError, match="digest mismatch"):
            _read_all(follower)
        thread.join(30)
    finally:
        proxy.stop()
    assert puller.store.blobs() == [] and os.listdir(puller.store.dir / "ingest") == []


def test_a_blob_stored_meanwhile_is_read_from_the_store(registry: Registry, pushed,
                                                        puller) -> None:
    data, desc, repo = pushed
    puller.store.put(data)
    follower, thread = _follow(puller, f"{registry.host}/{repo}", desc)
    got = _read_all(follower)
    thread.join(30)
    assert got == data and follower.from_store


def test_a_reader_leaving_early_lets_the_writer_go(registry: Registry, pushed,
                                                   puller) -> None:
    """The reader closes after a few bytes: the writer is never left waiting on a full
    buffer; a download told to stop keeps its partial data for a resume."""
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.throttle[desc.digest] = 0.002
    stop = threading.Event()
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc, limit=64 << 10,
                                   cancelled=stop)
        assert bytes(follower.read(10)) == data[:10]
        follower.close()
        assert follower.abandoned
        stop.set()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        proxy.stop()
    assert not puller.store.exists(desc.digest)
    partial = os.listdir(puller.store.dir / "ingest")
    assert len(partial) == 1 and 0 < os.path.getsize(puller.store.dir / "ingest" / partial[0])
    # the reader's side is closed: what the writer failed with is not raised anywhere
    follower.fail(TransferCancelledError("late"))


def test_drain_says_whether_the_bytes_read_were_the_blobs(registry: Registry, pushed,
                                                          puller) -> None:
    """A reader that failed on what it read lets the download end without it: True when
    the download verified what was handed out; the store holds the blob either way."""
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.throttle[desc.digest] = 0.001
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc, limit=64 << 10)
        assert bytes(follower.read(1000)) == data[:1000]
        assert follower.drain() is True
        assert not follower.abandoned
        thread.join(30)
    finally:
        proxy.stop()
    assert puller.store.read(desc.digest) == data


def test_drain_after_an_unchecked_partial_of_other_bytes_says_false(registry: Registry,
                                                                    pushed,
                                                                    puller) -> None:
    """The reader had bytes of a partial download left earlier (never checked) and failed
    on them; the resumed download does not verify and starts again with other bytes:
    drain says False (read the stored blob again) instead of blaming the blob."""
    data, desc, repo = pushed
    with puller.store.ingest(desc.digest, desc.size) as w:
        w.write(os.urandom(500_000))
    follower, thread = _follow(puller, f"{registry.host}/{repo}", desc)
    assert len(follower.read(1000)) == 1000
    assert follower.drain() is False
    thread.join(30)
    assert puller.store.read(desc.digest) == data


def test_drain_raises_what_the_download_failed_with(registry: Registry, pushed,
                                                    puller) -> None:
    data, desc, repo = pushed
    proxy = Proxy(registry.host)
    proxy.corrupt.add(desc.digest)
    try:
        follower, thread = _follow(puller, f"{proxy.host}/{repo}", desc)
        follower.read(1000)
        with pytest.raises(DigestMismatchError, match="digest mismatch"):
            follower.drain()
        thread.join(30)
    finally:
        proxy.stop()
    assert puller.store.blobs() == []
