"""The content store: blobs verified on the way in and out, resumable ingests, leases and
prune, and safety against other processes and SIGKILL on the same root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llb.content.digest import sha256_digest
from llb.content.errors import (BlobInUseError, BlobNotFoundError, DigestMismatchError,
                                InvalidDigestError, TransferCancelledError)
from llb.content.store import ContentStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path):
    s = ContentStore(tmp_path / "root")
    yield s
    s.close()


def _blob_files(root: Path) -> list[str]:
    return sorted(os.listdir(root / "content" / "blobs" / "sha256"))


def test_put_read_info_and_listing(store: ContentStore) -> None:
    info = store.put(b"hello")
    assert info.digest == sha256_digest(b"hello") and info.size == 5
    assert store.read(info.digest) == b"hello"
    assert store.read(info.digest, 5) == b"hello"
    assert store.exists(info.digest)
    assert [b.digest for b in store.blobs()] == [info.digest]
    assert store.path(info.digest).read_bytes() == b"hello"
    assert store.usage() >= 5
    assert oct(os.stat(store.path(info.digest)).st_mode & 0o777) == "0o444"
    again = store.put(b"hello", info.digest)  # idempotent
    assert again.digest == info.digest and len(store.blobs()) == 1


def test_put_with_a_wrong_digest_stores_nothing(store: ContentStore) -> None:
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        store.put(b"hello", sha256_digest(b"other"))
    assert store.blobs() == []
    assert os.listdir(store.dir / "ingest") == []


def test_bad_digest_strings_are_typed_errors(store: ContentStore) -> None:
    with pytest.raises(InvalidDigestError, match="not a sha256 digest"):
        store.exists("sha256:abc")
    with pytest.raises(InvalidDigestError, match="unsupported digest algorithm 'sha512'"):
        store.exists("sha512:" + "a" * 128)
    with pytest.raises(BlobNotFoundError, match="not in the content store"):
        store.read(sha256_digest(b"absent"))


def test_a_corrupt_blob_fails_verification_and_is_removed(store: ContentStore) -> None:
    info = store.put(b"x" * 100_000)
    path = store.blob_path(info.digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(50_000)
        f.write(b"y")
    with pytest.raises(DigestMismatchError, match=f"blob {info.digest} in the content store: "
                       "digest mismatch"):
        store.read(info.digest)
    assert not store.exists(info.digest)


def test_a_blob_of_the_wrong_size_is_refused_before_reading(store: ContentStore) -> None:
    info = store.put(b"abc")
    with pytest.raises(DigestMismatchError, match="size mismatch: 3 bytes, expected 4"):
        store.open(info.digest, 4)


def test_streaming_reader_verifies_at_the_end(store: ContentStore) -> None:
    data = os.urandom(3 << 20)
    info = store.put(data)
    with store.open(info.digest, len(data)) as r:
        parts = []
        while chunk := r.read(65536):
            parts.append(chunk)
    assert b"".join(parts) == data


def test_ingest_resumes_where_it_stopped(store: ContentStore) -> None:
    data = os.urandom(1 << 20)
    digest = sha256_digest(data)
    with store.ingest(digest, len(data)) as w:
        assert (w.offset, w.exists) == (0, False)
        w.write(data[:300_000])
    assert not store.exists(digest)  # nothing half-written is visible
    with store.ingest(digest, len(data)) as w:
        assert w.offset == 300_000
        w.write(data[300_000:])
        info = w.commit()
    assert info.size == len(data) and store.read(digest) == data
    assert os.listdir(store.dir / "ingest") == []
    with store.ingest(digest, len(data)) as w:
        assert w.exists


def test_ingest_reset_starts_again(store: ContentStore) -> None:
    data = b"0123456789"
    digest = sha256_digest(data)
    with store.ingest(digest, 10) as w:
        w.write(b"junk")
    with store.ingest(digest, 10) as w:
        assert w.offset == 4
        w.reset()
        w.write(data)
        w.commit()
    assert store.read(digest) == data


def test_ingest_of_wrong_bytes_fails_and_leaves_nothing(store: ContentStore) -> None:
    digest = sha256_digest(b"right")
    with store.ingest(digest, 5) as w:
        w.write(b"wrong")
        with pytest.raises(DigestMismatchError, match=f"blob {digest}: digest mismatch"):
            w.commit()
    with store.ingest(digest, 5) as w:
        with pytest.raises(DigestMismatchError, match="more data than its size"):
            w.write(b"toolong")
    assert store.blobs() == [] and os.listdir(store.dir / "ingest") == []


def test_a_second_writer_waits_then_finds_the_blob(store: ContentStore) -> None:
    data = b"shared blob"
    digest = sha256_digest(data)
    first = store.ingest(digest, len(data))
    got: list[bool] = []

    def second() -> None:
        with store.ingest(digest, len(data)) as w:
            got.append(w.exists)

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.2)
    assert got == []  # still waiting for the first writer
    first.write(data)
    first.commit()
    t.join(5)
    assert got == [True]


def test_a_waiting_writer_can_be_cancelled(store: ContentStore) -> None:
    digest = sha256_digest(b"zzz")
    with store.ingest(digest, 3):
        cancelled = threading.Event()
        cancelled.set()
        with pytest.raises(TransferCancelledError, match="cancelled"):
            store.ingest(digest, 3, cancelled=cancelled)


_WRITER = """
import os, sys, time
from pathlib import Path
from llb.content.store import ContentStore
from llb.content.digest import sha256_digest
root, mode = Path(sys.argv[1]), sys.argv[2]
data = bytes(range(256)) * 4096
s = ContentStore(root)
if mode == "partial":
    w = s.ingest(sha256_digest(data), len(data))
    w.write(data[:400_000])
    print("ready", flush=True)
    time.sleep(60)
elif mode == "loop":
    i = 0
    while True:
        s.put(data + f"{os.getpid()}-{i}".encode())
        i += 1
        if i == 5:
            print("ready", flush=True)
elif mode == "leased":
    s.put(b"blob of a process that dies")
    print("ready", flush=True)
    time.sleep(60)
"""


def _spawn(root: Path, mode: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), mode], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _kill(p: subprocess.Popen[str]) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.stdout is not None
    p.stdout.close()


def test_another_process_download_blocks_then_resumes_after_sigkill(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = bytes(range(256)) * 4096
    digest = sha256_digest(data)
    p = _spawn(root, "partial")
    s = ContentStore(root)
    try:
        cancelled = threading.Event()
        threading.Timer(0.3, cancelled.set).start()
        with pytest.raises(TransferCancelledError):  # the other process holds the ingest
            s.ingest(digest, len(data), cancelled=cancelled)
        _kill(p)
        assert _blob_files(root) == []
        with s.ingest(digest, len(data)) as w:
            assert w.offset == 400_000
            w.write(data[400_000:])
            w.commit()
        assert s.read(digest) == data
    finally:
        s.close()


def test_sigkill_at_any_point_leaves_only_verified_blobs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for round_ in range(4):
        p = _spawn(root, "loop")
        time.sleep(0.05 * round_)
        _kill(p)
    s = ContentStore(root)
    try:
        blobs = s.blobs()
        assert len(blobs) >= 20
        for b in blobs:  # every visible blob is complete: reading verifies it
            assert len(s.read(b.digest, b.size)) == b.size
        s.prune()
        assert s.blobs() == [] and os.listdir(s.dir / "ingest") == []
        assert os.listdir(s.dir / "sessions") == [f"{s.session_holder[8:]}.lock"]
    finally:
        s.close()


def test_leases_keep_blobs_from_prune(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with ContentStore(root) as writer:
        a, b, c = (writer.put(x).digest for x in (b"a", b"b", b"c"))
        writer.lease(b, "cache:record-1")
        with ContentStore(root) as other:
            assert other.prune() == 0  # the writer's session still leases all three
        assert writer.leases(b) == ["cache:record-1", writer.session_holder]
    with ContentStore(root) as s:
        assert s.prune(keep=[a]) > 0  # c: no lease, not kept
        assert [x.digest for x in s.blobs()] == sorted([a, b])
        assert s.holders() == ["cache:record-1"]
        with pytest.raises(BlobInUseError, match="leased by cache:record-1"):
            s.remove(b)
        s.release(b, "cache:record-1")
        assert s.remove(b) > 0
        assert [x.digest for x in s.blobs()] == [a]
        with pytest.raises(BlobNotFoundError):
            s.lease(b, "cache:record-1")


def test_a_dead_process_session_lease_is_reaped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    p = _spawn(root, "leased")
    digest = sha256_digest(b"blob of a process that dies")
    with ContentStore(root) as s:
        assert s.prune() == 0 and s.exists(digest)  # leased by a live process
        _kill(p)
        assert s.prune() > 0 and not s.exists(digest)
        assert s.holders() == []


def test_prune_keeps_an_active_download_and_drops_a_stopped_one(store: ContentStore) -> None:
    active = store.ingest(sha256_digest(b"active"), 6)
    active.write(b"act")
    with store.ingest(sha256_digest(b"stopped"), 7) as w:
        w.write(b"sto")
    assert len(os.listdir(store.dir / "ingest")) == 2
    store.prune()
    assert os.listdir(store.dir / "ingest") == [sha256_digest(b"active")[7:]]
    active.write(b"ive")
    active.commit()
    assert store.read(sha256_digest(b"active")) == b"active"
