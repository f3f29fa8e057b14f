"""Pulled layers are unpacked as their blobs download (the download stores and verifies the
blob meanwhile), and a blob already stored is unpacked without hashing it again: against a
real registry behind a proxy that cuts, throttles or ignores ranges. A corrupt stored blob
is found when its unpack fails, removed and downloaded again; a cut download resumes under
the unpack; a SIGKILL mid-download leaves the layer lazy and the partial download resumed
by the next solve. Both snapshotters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import llb
from llb.content.store import ContentStore
from faultserver import Proxy
from pushhelp import image_of, push
from registryhelp import Registry
from solvehelp import LLB, write

BIG = os.urandom(3 << 20)  # incompressible: the blob is about as big


@dataclass
class Image:
    name: str        # REPOSITORY:TAG (no host: the tests pull it through a proxy)
    blob: str        # the digest of its one layer blob
    data: bytes      # that blob's bytes


@pytest.fixture(scope="session")
def image(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """One layer: /big (3 MiB random) and /etc/conf, pushed as test/stream:1."""
    root = tmp_path_factory.mktemp("stream-image")
    state = llb.scratch().file(llb.mkfile("/big", BIG, 0o640).mkdir("/etc", 0o755)
                               .mkfile("/etc/conf", b"conf\n", 0o600))
    desc, blobs = image_of(root, state, env=())
    push(root, desc, f"{registry.host}/test/stream:1")
    content = ContentStore(root)
    try:
        data = content.read(blobs[0].digest, limit=64 << 20)
    finally:
        content.close()
    return Image("test/stream:1", blobs[0].digest, data)


@pytest.fixture
def proxy(registry: Registry):
    p = Proxy(registry.host)
    yield p
    p.stop()


def _build(tmp_path: Path, ref: str) -> Path:
    return write(tmp_path / "build.py",
                 f"import llb\n\ndef build():\n    return llb.image({ref!r})"
                 ".file(llb.mkfile('/touched', 'yes'))\n")


def _check_tree(out: Path) -> None:
    assert (out / "big").read_bytes() == BIG
    assert (out / "big").stat().st_mode & 0o777 == 0o640
    assert (out / "etc/conf").read_text() == "conf\n"
    assert (out / "etc/conf").stat().st_mode & 0o777 == 0o600
    assert (out / "touched").read_text() == "yes"


def _blob_gets(proxy: Proxy, digest: str) -> list[str | None]:
    return [h.get("Range") for m, p, h in proxy.requests if m == "GET" and p.endswith(digest)]


def _stored(root: Path, digest: str) -> bool:
    content = ContentStore(root)
    try:
        return content.check(digest)
    finally:
        content.close()


def test_a_layer_is_unpacked_while_it_downloads(llb_root: LLB, tmp_path: Path, image: Image,
                                               proxy: Proxy) -> None:
    proxy.throttle[image.blob] = 0.001
    out = tmp_path / "out"
    r = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                       "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert _blob_gets(proxy, image.blob) == [None]
    assert _stored(llb_root.root, image.blob)
    progress = [e for e in r.events if e["event"] == "progress" and e.get("id") == image.blob]
    assert progress and progress[-1]["current"] == progress[-1]["total"] == len(image.data)


def test_a_corrupt_stored_blob_is_removed_and_fetched_again(llb_root: LLB, tmp_path: Path,
                                                            image: Image,
                                                            proxy: Proxy) -> None:
    """The stored copy is read without hashing it; the unpack fails on it (gzip or the
    diff_id), the copy is checked, removed as corrupt, and the layer unpacked again from a
    fresh download."""
    blobs = llb_root.root / "content" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    bad = bytearray(image.data)
    bad[len(bad) // 2] ^= 0x55
    (blobs / image.blob.split(":")[1]).write_bytes(bytes(bad))  # bitrot after it was stored
    out = tmp_path / "out"
    r = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                       "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert _blob_gets(proxy, image.blob) == [None]
    assert (blobs / image.blob.split(":")[1]).read_bytes() == image.data


def test_a_stored_blob_is_unpacked_without_the_registry(llb_root: LLB, tmp_path: Path,
                                                        image: Image, proxy: Proxy) -> None:
    first = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"))
    assert first.code == 0, first.stderr
    # a fresh root holding only the content store: the layers must be unpacked again
    other = LLB(tmp_path / "other", llb_root.snapshotter)
    other.root.mkdir()
    os.rename(llb_root.root / "content", other.root / "content")
    for lock in (other.root / "content" / "sessions").iterdir():
        lock.unlink()
    before = len(_blob_gets(proxy, image.blob))
    out = tmp_path / "out"
    r = other.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                    "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert len(_blob_gets(proxy, image.blob)) == before  # no download


def test_a_cut_download_resumes_under_the_unpack(llb_root: LLB, tmp_path: Path, image: Image,
                                                 proxy: Proxy) -> None:
    proxy.cut[image.blob] = 1_000_003
    out = tmp_path / "out"
    r = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                       "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert _blob_gets(proxy, image.blob) == [None, "bytes=1000003-"]


def test_a_server_without_ranges_is_followed_from_the_start(llb_root: LLB, tmp_path: Path,
                                                            image: Image,
                                                            proxy: Proxy) -> None:
    proxy.cut[image.blob] = 1_500_000
    proxy.ignore_range.add(image.blob)
    out = tmp_path / "out"
    r = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                       "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert len(_blob_gets(proxy, image.blob)) == 2
    assert _stored(llb_root.root, image.blob)


def test_a_kill_mid_download_leaves_the_layer_lazy_and_the_download_resumable(
        llb_root: LLB, tmp_path: Path, image: Image, proxy: Proxy) -> None:
    proxy.throttle[image.blob] = 0.02  # 48 pieces of 64 KiB: about a second
    build = _build(tmp_path, f"{proxy.host}/{image.name}")
    p = subprocess.Popen(llb_root.solve_args(build), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    try:
        for line in p.stderr:
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if e["event"] == "progress" and e.get("id") == image.blob and \
                    0 < e["current"] < e["total"]:
                os.kill(p.pid, signal.SIGKILL)
                break
    finally:
        p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL
    ingest = llb_root.root / "content" / "ingest" / image.blob.split(":")[1]
    have = ingest.stat().st_size
    assert 0 < have < len(image.data)
    del proxy.throttle[image.blob]
    out = tmp_path / "out"
    r = llb_root.solve(build, "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    ranges = _blob_gets(proxy, image.blob)
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1][6:-1]) >= have
    assert _stored(llb_root.root, image.blob) and not ingest.exists()


def test_a_corrupt_partial_download_does_not_wedge_the_pull(llb_root: LLB, tmp_path: Path,
                                                           image: Image,
                                                           proxy: Proxy) -> None:
    """What an earlier download left is bytes no one checked: the unpack fails on them
    (garbage after the gzip header: an invalid deflate block) long before the resumed
    download would find them wrong. The download is seen through, its resume does not
    verify, it starts again from byte 0, and the layer is unpacked from the fresh blob."""
    ingest = llb_root.root / "content" / "ingest"
    ingest.mkdir(parents=True)
    partial = ingest / image.blob.split(":")[1]
    partial.write_bytes(image.data[:10] + b"\xff" * (1 << 20))
    out = tmp_path / "out"
    r = llb_root.solve(_build(tmp_path, f"{proxy.host}/{image.name}"),
                       "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    _check_tree(out)
    assert _blob_gets(proxy, image.blob) == [f"bytes={(1 << 20) + 10}-", None]
    assert _stored(llb_root.root, image.blob) and not partial.exists()
