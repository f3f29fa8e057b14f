"""The registry client against Debian's docker-registry on 127.0.0.1 (open, htpasswd basic
auth, Bearer tokens from a token service), with small local fakes for what a real registry
will not do on demand (cut connections, corrupt bytes, HTTP 500, hanging)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from faultserver import ErrorServer, HangingServer, Proxy
from imagehelp import make_image, make_index
from registryhelp import PASSWORD, USER, Registry, TokenRegistry, docker_config, free_port

from llb.content import mediatypes as mt
from llb.content.credentials import Credential, DockerCredentials
from llb.content.descriptor import Descriptor
from llb.content.errors import (AuthError, BlobNotFoundError, DigestMismatchError,
                                InvalidManifestError, NotFoundError, PlatformNotFoundError,
                                RegistryTimeoutError, ServerError, UnreachableError,
                                UnsupportedMediaTypeError)
from llb.content.manifest import Manifest
from llb.content.platforms import Platform
from llb.content.reference import Reference
from llb.content.registry import RegistryClient
from llb.content.store import ContentStore

NO_CREDS = DockerCredentials({})
CREDS = DockerCredentials({"placeholder": Credential(USER, PASSWORD)})


class Clients:
    """Fresh stores and clients per test, closed at the end."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._open: list[RegistryClient] = []

    def new(self, credentials: DockerCredentials = NO_CREDS, **kw: object) -> RegistryClient:
        store = ContentStore(self.tmp / f"root{len(self._open)}")
        client = RegistryClient(store, credentials=credentials, **kw)  # type: ignore[arg-type]
        self._open.append(client)
        return client

    def close(self) -> None:
        for c in self._open:
            c.close()
            c.store.close()


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Clients]:
    c = Clients(tmp_path)
    yield c
    c.close()


def _creds_for(host: str) -> DockerCredentials:
    return DockerCredentials({host: Credential(USER, PASSWORD)})


def _image(client: RegistryClient, seed: str, n: int = 2) -> tuple[Descriptor, Manifest]:
    layers = [{f"{seed}/file{i}.txt": f"{seed} layer {i}\n".encode() * (i + 1)}
              for i in range(n)]
    desc, manifest, _ = make_image(client.store, layers)
    return desc, manifest


def _round_trip(pusher: RegistryClient, puller: RegistryClient, ref: str) -> None:
    desc, manifest = _image(pusher, ref.rsplit("/", 1)[-1])
    pushed = pusher.push_image(ref, desc)
    assert pushed.digest == desc.digest
    resolved = puller.resolve(ref)
    assert resolved.root.digest == desc.digest and resolved.manifest == manifest
    puller.fetch_blobs(ref, resolved.layers)
    for layer in manifest.layers:
        assert puller.store.read(layer.digest) == pusher.store.read(layer.digest)


def test_push_then_pull_by_tag_and_by_digest(registry: Registry, clients: Clients) -> None:
    pusher, puller = clients.new(), clients.new()
    desc, manifest = _image(pusher, "app")
    ref = f"{registry.host}/test/app:v1"
    events: list[tuple[str, int, int]] = []
    pushed = pusher.push_image(ref, desc, progress=lambda d, c, t: events.append((d, c, t)))
    assert pushed == Descriptor(mt.OCI_MANIFEST, desc.digest, desc.size)
    for blob in (manifest.config, *manifest.layers):
        assert (blob.digest, blob.size, blob.size) in events

    by_tag = puller.resolve(ref)
    assert by_tag.root.digest == desc.digest and by_tag.manifest == manifest
    assert by_tag.config.diff_ids and by_tag.config.cmd == ["/bin/sh"]
    assert by_tag.index is None and str(by_tag.descriptor.platform) == "linux/amd64"
    puller.fetch_blobs(ref, by_tag.layers)
    for layer in manifest.layers:
        assert puller.store.read(layer.digest, layer.size) == pusher.store.read(layer.digest)

    by_digest = clients.new().resolve(f"{registry.host}/test/app@{desc.digest}")
    assert by_digest.manifest == manifest and by_digest.config == by_tag.config


def test_a_pinned_image_already_stored_needs_no_network(registry: Registry,
                                                       clients: Clients) -> None:
    client = clients.new()
    desc, manifest = _image(client, "offline")
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    resolved = client.resolve(f"{nobody}/test/offline@{desc.digest}")
    assert resolved.manifest == manifest
    with pytest.raises(UnreachableError, match=f"cannot reach registry {nobody}"):
        client.resolve(f"{nobody}/test/offline:latest")


def test_head_skips_blobs_the_registry_has(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    desc, manifest = _image(client, "skip", 3)
    ref = f"{registry.host}/test/skip:v1"
    blobs = [manifest.config, *manifest.layers]
    first = client.push_blobs(ref, blobs)
    assert set(first.values()) == {"uploaded"} and len(first) == 4
    again = client.push_blobs(ref, blobs)
    assert set(again.values()) == {"exists"}


def test_cross_repository_mount(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    desc, manifest = _image(client, "mount")
    src = Reference.parse(f"{registry.host}/test/mount-src:v1")
    client.push_image(src, desc)
    dst = f"{registry.host}/test/mount-dst:v1"
    layer = manifest.layers[0]
    assert not client.blob_exists(dst, layer.digest)
    assert client.push_blob(dst, layer, mount_from=[src]) == "mounted"
    assert client.blob_exists(dst, layer.digest)
    # a blob the store lacks can still be pushed by mounting it
    fresh = clients.new()
    result = fresh.push_blobs(dst, manifest.layers, mount_from={d.digest: [src]
                                                                for d in manifest.layers})
    assert result == {manifest.layers[0].digest: "exists", manifest.layers[1].digest: "mounted"}
    with pytest.raises(BlobNotFoundError, match="the registry lacks it and it is not in the "
                       "content store"):
        fresh.push_blob(f"{registry.host}/test/mount-other:v1", manifest.layers[0])


def test_chunked_upload(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    data = os.urandom(10_000)
    info = client.store.put(data)
    ref = f"{registry.host}/test/chunked:v1"
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    events: list[int] = []
    assert client.push_blob(ref, desc, chunk_size=3000,
                            progress=lambda d, c, t: events.append(c)) == "uploaded"
    assert events == [0, 3000, 6000, 9000, 10_000]
    other = clients.new()
    other.fetch_blob(ref, desc)
    assert other.store.read(desc.digest) == data


def test_index_resolves_to_the_platform_asked_for(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    amd, amd_m, _ = make_image(client.store, [{"a": b"amd64"}], platform="linux/amd64")
    arm, arm_m, _ = make_image(client.store, [{"a": b"arm64"}], platform="linux/arm64")
    index = make_index(client.store, [amd, arm])
    ref = f"{registry.host}/test/multi:v1"
    client.push_image(ref, index)
    puller = clients.new(platform=Platform.parse("linux/amd64"))
    got = puller.resolve(ref)
    assert got.root.digest == index.digest and got.index is not None
    assert got.manifest == amd_m and got.descriptor.digest == amd.digest
    assert puller.resolve(ref, Platform.parse("linux/arm64/v8")).manifest == arm_m
    with pytest.raises(PlatformNotFoundError, match="no manifest for platform linux/s390x "
                       r"\(it has: linux/amd64, linux/arm64\)"):
        puller.resolve(ref, Platform.parse("linux/s390x"))


def test_several_blobs_download_in_parallel_with_progress(registry: Registry,
                                                          clients: Clients) -> None:
    client = clients.new()
    blobs = []
    for i in range(6):
        info = client.store.put(os.urandom(300_000 + i))
        blobs.append(Descriptor(mt.OCI_LAYER, info.digest, info.size))
    ref = f"{registry.host}/test/parallel:v1"
    client.push_blobs(ref, blobs)
    proxy = Proxy(registry.host)
    try:
        puller = clients.new(workers=3)
        last: dict[str, tuple[int, int]] = {}
        threads = set()

        def progress(d: str, c: int, t: int) -> None:
            last[d] = (c, t)
            threads.add(threading.current_thread().name)

        puller.fetch_blobs(f"{proxy.host}/test/parallel:v1", blobs, progress=progress)
    finally:
        proxy.stop()
    assert last == {b.digest: (b.size, b.size) for b in blobs}
    assert len(threads) == 3
    for b in blobs:
        assert puller.store.read(b.digest) == client.store.read(b.digest)


def test_a_dropped_connection_resumes_with_a_range_request(registry: Registry,
                                                           clients: Clients) -> None:
    client = clients.new()
    info = client.store.put(os.urandom(500_000))
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    client.push_blob(f"{registry.host}/test/resume:v1", desc)
    proxy = Proxy(registry.host)
    proxy.cut[desc.digest] = 123_456
    try:
        puller = clients.new()
        starts: list[int] = []
        puller.fetch_blob(f"{proxy.host}/test/resume:v1", desc,
                          progress=lambda d, c, t: starts.append(c))
    finally:
        proxy.stop()
    ranges = [h.get("Range") for m, p, h in proxy.requests if m == "GET"]
    assert ranges == [None, "bytes=123456-"]
    assert 123_456 in starts and starts[-1] == desc.size
    assert puller.store.read(desc.digest) == client.store.read(desc.digest)


def test_a_partial_download_left_by_an_earlier_run_resumes(registry: Registry,
                                                           clients: Clients) -> None:
    client = clients.new()
    data = os.urandom(400_000)
    info = client.store.put(data)
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    client.push_blob(f"{registry.host}/test/partial:v1", desc)
    puller = clients.new()
    with puller.store.ingest(desc.digest, desc.size) as w:  # as a killed pull leaves it
        w.write(data[:250_000])
    proxy = Proxy(registry.host)
    try:
        events: list[int] = []
        puller.fetch_blob(f"{proxy.host}/test/partial:v1", desc,
                          progress=lambda d, c, t: events.append(c))
    finally:
        proxy.stop()
    assert [h.get("Range") for m, p, h in proxy.requests if m == "GET"] == ["bytes=250000-"]
    assert events[0] == 250_000 and puller.store.read(desc.digest) == data


def test_a_resumed_download_that_does_not_verify_starts_again(registry: Registry,
                                                              clients: Clients) -> None:
    client = clients.new()
    data = os.urandom(200_000)
    info = client.store.put(data)
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    client.push_blob(f"{registry.host}/test/badpartial:v1", desc)
    puller = clients.new()
    with puller.store.ingest(desc.digest, desc.size) as w:  # a partial of other bytes
        w.write(os.urandom(1000))
    proxy = Proxy(registry.host)
    try:
        puller.fetch_blob(f"{proxy.host}/test/badpartial:v1", desc)
    finally:
        proxy.stop()
    assert [h.get("Range") for m, p, h in proxy.requests if m == "GET"] == ["bytes=1000-", None]
    assert puller.store.read(desc.digest) == data


def test_a_corrupt_blob_is_refused_and_nothing_stays(registry: Registry,
                                                     clients: Clients) -> None:
    client = clients.new()
    info = client.store.put(os.urandom(50_000))
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    client.push_blob(f"{registry.host}/test/corrupt:v1", desc)
    proxy = Proxy(registry.host)
    proxy.corrupt.add(desc.digest)
    try:
        puller = clients.new()
        with pytest.raises(DigestMismatchError, match=f"blob {desc.digest}: digest mismatch"):
            puller.fetch_blob(f"{proxy.host}/test/corrupt:v1", desc)
    finally:
        proxy.stop()
    assert puller.store.blobs() == [] and os.listdir(puller.store.dir / "ingest") == []
    wrong_size = Descriptor(mt.OCI_LAYER, desc.digest, desc.size + 1)
    with pytest.raises(DigestMismatchError, match="the descriptor says"):
        puller.fetch_blob(f"{registry.host}/test/corrupt:v1", wrong_size)


def test_a_tampered_manifest_is_refused(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    desc, _ = _image(client, "tamper")
    client.push_image(f"{registry.host}/test/tamper:v1", desc)
    proxy = Proxy(registry.host)
    proxy.corrupt.update({desc.digest, "v1"})
    try:
        with pytest.raises(DigestMismatchError, match=f"manifest {desc.digest} of .*: digest "
                           "mismatch: got sha256:[0-9a-f]{64}$"):
            clients.new().resolve(f"{proxy.host}/test/tamper@{desc.digest}")
        with pytest.raises(DigestMismatchError, match="manifest v1 of .*: digest mismatch: got "
                           f"sha256:.*, registry {proxy.host} says {desc.digest}"):
            clients.new().resolve(f"{proxy.host}/test/tamper:v1")
    finally:
        proxy.stop()


def test_not_found_is_a_one_line_error(registry: Registry, clients: Clients) -> None:
    client = clients.new()
    with pytest.raises(NotFoundError) as info:
        client.resolve(f"{registry.host}/test/nothing:v9")
    assert str(info.value) == (f"manifest v9 of {registry.host}/test/nothing: not found on "
                               f"registry {registry.host} (MANIFEST_UNKNOWN: manifest unknown)")
    absent = Descriptor(mt.OCI_LAYER, "sha256:" + "0" * 64, 1)
    with pytest.raises(NotFoundError, match=f"blob sha256:0{{64}} of {registry.host}/test/"
                       "nothing: not found"):
        client.fetch_blob(f"{registry.host}/test/nothing:v9", absent)
    assert info.value.exit_code == 1


def test_server_error_is_a_one_line_error(clients: Clients) -> None:
    server = ErrorServer(500, "UNKNOWN", "disk on fire")
    try:
        with pytest.raises(ServerError) as info:
            clients.new().resolve(f"{server.host}/test/x:v1")
    finally:
        server.stop()
    assert str(info.value) == (f"manifest v1 of {server.host}/test/x: registry {server.host} "
                               "failed with HTTP 500 (UNKNOWN: disk on fire)")


def test_hostile_manifests_from_a_registry_are_refused(clients: Clients) -> None:
    huge = ErrorServer(200, body=b'{"schemaVersion": 2, "x": "' + b"a" * (5 << 20) + b'"}',
                       content_type=mt.OCI_MANIFEST)
    odd = ErrorServer(200, body=json.dumps({"schemaVersion": 2, "mediaType": "application/vnd."
                                            "example.thing+json", "config": {}}).encode(),
                      content_type="application/vnd.example.thing+json")
    try:
        with pytest.raises(InvalidManifestError, match=f"manifest v1 of {huge.host}/test/x: "
                           "more than 4194304 bytes"):
            clients.new().resolve(f"{huge.host}/test/x:v1")
        with pytest.raises(UnsupportedMediaTypeError, match="unsupported media type "
                           "'application/vnd.example.thing\\+json'"):
            clients.new().resolve(f"{odd.host}/test/x:v1")
    finally:
        huge.stop()
        odd.stop()


def test_a_hanging_registry_times_out(clients: Clients) -> None:
    server = HangingServer()
    try:
        start = time.monotonic()
        with pytest.raises(RegistryTimeoutError) as info:
            clients.new(timeout=0.5).resolve(f"{server.host}/test/x:v1")
        assert time.monotonic() - start < 5
    finally:
        server.stop()
    assert str(info.value) == (f"manifest v1 of {server.host}/test/x: registry {server.host} "
                               "did not answer within 0.5 s")


def test_basic_auth(basic_registry: Registry, clients: Clients, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    host = basic_registry.host
    with pytest.raises(AuthError) as info:
        clients.new().resolve(f"{host}/test/basic:v1")
    assert str(info.value) == (f"manifest v1 of {host}/test/basic: registry {host} requires "
                               "credentials: none for it in the Docker config (docker login)")
    wrong = DockerCredentials({host: Credential(USER, "wrong")})
    with pytest.raises(AuthError, match=f"registry {host} denied access"):
        clients.new(wrong).resolve(f"{host}/test/basic:v1")
    # credentials from $DOCKER_CONFIG/config.json, `auth` as base64 user:password
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    docker_config(tmp_path / "docker", {f"http://{host}": {"auth": auth}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    store = ContentStore(tmp_path / "env-root")
    with RegistryClient(store) as from_env:
        _round_trip(from_env, clients.new(_creds_for(host)), f"{host}/test/basic:v1")
    store.close()


def test_bearer_token_auth(token_registry: TokenRegistry, clients: Clients) -> None:
    host, tokens = token_registry.host, token_registry.tokens
    with pytest.raises(AuthError, match=f"registry {host} denied access"):
        clients.new().resolve(f"{host}/test/token:v1")
    wrong = DockerCredentials({host: Credential(USER, "wrong")})
    with pytest.raises(AuthError, match="the token service refused the credentials"):
        clients.new(wrong).resolve(f"{host}/test/token:v1")
    pusher = clients.new(_creds_for(host))
    tokens.requests.clear()
    _round_trip(pusher, clients.new(_creds_for(host)), f"{host}/test/token:v1")
    # one token per client and scope set, cached for the whole push and the whole pull
    assert sorted(tokens.requests) == [
        (USER, ["repository:test/token:pull"]),
        (USER, ["repository:test/token:pull,push"]),
    ]
    # a cross-repository mount asks for pull on the source repository too
    desc, manifest = _image(pusher, "token-src")
    pusher.push_image(f"{host}/test/token-src:v1", desc)
    tokens.requests.clear()
    src = Reference.parse(f"{host}/test/token-src:v1")
    assert pusher.push_blob(f"{host}/test/token-dst:v1", manifest.layers[0],
                            mount_from=[src]) == "mounted"
    assert tokens.requests == [(USER, ["repository:test/token-dst:pull,push",
                                       "repository:test/token-src:pull"])]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_what_the_client_pushed(registry: Registry, basic_registry: Registry,
                                             clients: Clients) -> None:
    for reg, creds in ((registry, []), (basic_registry, ["--creds", f"{USER}:{PASSWORD}"])):
        client = clients.new(_creds_for(reg.host))
        desc, manifest = _image(client, "skopeo", 3)
        client.push_image(f"{reg.host}/test/skopeo:v1", desc)
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", *creds,
                              f"docker://{reg.host}/test/skopeo:v1"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["Digest"] == desc.digest
        assert info["Layers"] == [d.digest for d in manifest.layers]
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
        assert info["Env"] == ["PATH=/usr/bin:/bin"]


def test_blob_bodies_are_read_in_large_pieces(registry: Registry, clients: Clients) -> None:
    """httpcore reads a body 1 MiB at a time (its default, 64 KiB, spends more CPU in h11's
    parser than a pull spends hashing): a 3 MiB blob arrives in a few pieces, not 48."""
    from httpcore._sync.http11 import HTTP11Connection

    from llb.content.transport import READ_SIZE

    assert HTTP11Connection.READ_NUM_BYTES == READ_SIZE == 1 << 20
    client = clients.new()
    info = client.store.put(os.urandom(3 << 20))
    desc = Descriptor(mt.OCI_LAYER, info.digest, info.size)
    client.push_blob(f"{registry.host}/test/pieces:v1", desc)
    pieces: list[int] = []
    puller = clients.new()
    puller.fetch_blob(f"{registry.host}/test/pieces:v1", desc,
                      progress=lambda d, c, t: pieces.append(c))
    assert pieces[-1] == desc.size and len(pieces) < 24
