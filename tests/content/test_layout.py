"""OCI image layouts: written from the content store as a directory or a deterministic tar,
read back by tag or digest, and checked by independent readers (skopeo, umoci); layouts
skopeo writes read by llb; hostile layouts refused with one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from imagehelp import make_image, make_index
from registryhelp import Registry

from llb.content import mediatypes as mt
from llb.content.credentials import DockerCredentials
from llb.content.descriptor import ANNOTATION_REF_NAME
from llb.content.errors import (DigestMismatchError, InvalidManifestError, LayoutError,
                                PlatformNotFoundError)
from llb.content.layout import OCILayout, tagged, write_layout, write_layout_tar
from llb.content.platforms import Platform
from llb.content.registry import RegistryClient
from llb.content.store import ContentStore

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"app/run.sh": b"#!/bin/sh\necho hi\n",
                                           "etc/hello.txt": b"hello again\n"}]
needs = pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("umoci") is None,
                           reason="skopeo and umoci are not installed")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContentStore]:
    s = ContentStore(tmp_path / "root")
    yield s
    s.close()


def _run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@needs
def test_a_written_layout_reads_back_and_independent_readers_agree(store: ContentStore,
                                                                    tmp_path: Path) -> None:
    desc, manifest, config = make_image(store, LAYERS)
    dest = tmp_path / "layout"
    write_layout(store, dest, [tagged(desc, "v1", "example.com/app:v1")])
    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    with OCILayout(dest) as layout:
        assert layout.names() == ["v1"]
        got = layout.resolve(tag="v1")
        assert got.manifest == manifest and got.config == config
        assert layout.find(tag="example.com/app:v1").digest == desc.digest
        assert layout.resolve(digest=desc.digest).manifest == manifest
        other = ContentStore(tmp_path / "other")
        layout.copy_to(other, layout.blobs(layout.find("v1")))
        for blob in (manifest.config, *manifest.layers):
            assert other.read(blob.digest) == store.read(blob.digest)
        other.close()
    info = json.loads(_run("skopeo", "inspect", f"oci:{dest}:v1"))
    assert info["Digest"] == desc.digest
    assert info["Layers"] == [d.digest for d in manifest.layers]
    bundle = tmp_path / "bundle"
    _run("umoci", "unpack", "--image", f"{dest}:v1", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/hello.txt").read_bytes() == b"hello again\n"
    assert (rootfs / "app/run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"


@needs
def test_a_layout_tar_is_deterministic_and_readable(store: ContentStore, tmp_path: Path) -> None:
    desc, manifest, _ = make_image(store, LAYERS)
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    write_layout_tar(store, a, [tagged(desc, "latest")], mtime=1_700_000_000)
    write_layout_tar(store, b, [tagged(desc, "latest")], mtime=1_700_000_000)
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with OCILayout(a) as layout:
        assert layout.resolve(tag="latest").manifest == manifest
    info = json.loads(_run("skopeo", "inspect", f"oci-archive:{a}:latest"))
    assert info["Digest"] == desc.digest
    import tarfile

    with tarfile.open(a) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {1_700_000_000}
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    assert [m.name for m in members][-2:] == ["index.json", "oci-layout"]


def test_writing_into_a_layout_adds_and_replaces_tags(store: ContentStore,
                                                      tmp_path: Path) -> None:
    one, _, _ = make_image(store, [{"a": b"1"}])
    two, _, _ = make_image(store, [{"a": b"2"}])
    three, _, _ = make_image(store, [{"a": b"3"}])
    dest = tmp_path / "layout"
    write_layout(store, dest, [tagged(one, "one"), tagged(two, "latest")])
    write_layout(store, dest, [tagged(three, "latest")])
    with OCILayout(dest) as layout:
        assert sorted(layout.names()) == ["latest", "one"]
        assert layout.find("latest").digest == three.digest
        assert layout.find("one").digest == one.digest
        with pytest.raises(LayoutError, match=r"no image tagged 'two' \(it has: one, latest\)"):
            layout.find("two")
        with pytest.raises(LayoutError, match="holds 2 images: name a tag or digest"):
            layout.find()
    blobs = os.listdir(dest / "blobs" / "sha256")
    assert len(blobs) == 3 * 3  # per image: a layer, a config, a manifest


def test_a_multi_platform_layout_resolves_per_platform(store: ContentStore,
                                                       tmp_path: Path) -> None:
    amd, amd_m, _ = make_image(store, [{"p": b"amd64"}], platform="linux/amd64")
    arm, arm_m, _ = make_image(store, [{"p": b"arm"}], platform="linux/arm/v7")
    index = make_index(store, [amd, arm])
    dest = tmp_path / "layout"
    write_layout(store, dest, [tagged(index, "multi")])
    with OCILayout(dest) as layout:
        assert layout.resolve("multi", platform=Platform.parse("linux/amd64")).manifest == amd_m
        assert layout.resolve("multi", platform=Platform.parse("linux/arm/v7")).manifest == arm_m
        with pytest.raises(PlatformNotFoundError, match="linux/arm/v6"):
            layout.resolve("multi", platform=Platform.parse("linux/arm/v6"))


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_llb_reads_a_layout_skopeo_wrote(registry: Registry, store: ContentStore,
                                         tmp_path: Path) -> None:
    desc, manifest, _ = make_image(store, LAYERS, docker=True)
    with RegistryClient(store, credentials=DockerCredentials({})) as client:
        client.push_image(f"{registry.host}/test/layout-src:v1", desc)
    dest = tmp_path / "skopeo-layout"
    _run("skopeo", "copy", "--src-tls-verify=false",
         f"docker://{registry.host}/test/layout-src:v1", f"oci:{dest}:copied")
    with OCILayout(dest) as layout:
        got = layout.resolve("copied")
        assert got.manifest.media_type == mt.OCI_MANIFEST  # skopeo converted it to OCI
        assert [d.digest for d in got.layers] == [d.digest for d in manifest.layers]
        assert got.config.diff_ids == [json.loads(store.read(manifest.config.digest))
                                       ["rootfs"]["diff_ids"]][0]
        fresh = ContentStore(tmp_path / "fresh")
        layout.copy_to(fresh, got.layers)
        assert [fresh.read(d.digest) for d in got.layers] == [store.read(d.digest)
                                                              for d in manifest.layers]
        fresh.close()


def _layout(store: ContentStore, tmp_path: Path) -> tuple[Path, str]:
    desc, manifest, _ = make_image(store, LAYERS)
    dest = tmp_path / "hostile"
    write_layout(store, dest, [tagged(desc, "v1")])
    return dest, manifest.layers[0].digest


def test_hostile_layouts_are_one_line_errors(store: ContentStore, tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="no such OCI layout directory or tar"):
        OCILayout(tmp_path / "missing")
    dest, layer = _layout(store, tmp_path)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(LayoutError, match="oci-layout does not say imageLayoutVersion 1.0.0"):
        OCILayout(dest)
    (dest / "oci-layout").unlink()
    with pytest.raises(LayoutError, match="hostile: no oci-layout"):
        OCILayout(dest)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = (dest / "index.json").read_bytes()
    (dest / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"mediaType": 1}]}')
    with pytest.raises(InvalidManifestError, match=r"index.json: manifests\[0\]: descriptor has no "
                       "mediaType"):
        OCILayout(dest)
    (dest / "index.json").write_bytes(index)
    blob = dest / "blobs" / "sha256" / layer[7:]
    blob.write_bytes(b"tampered" + blob.read_bytes()[8:])
    fresh = ContentStore(tmp_path / "fresh")
    with OCILayout(dest) as layout:
        got = layout.resolve("v1")
        with pytest.raises(DigestMismatchError, match=f"blob {layer}: digest mismatch"):
            layout.copy_to(fresh, [got.layers[0]])
        blob.write_bytes(b"short")
        with pytest.raises(DigestMismatchError, match="size mismatch: 5 bytes"):
            layout.copy_to(fresh, [got.layers[0]])
        assert fresh.blobs() == [] and os.listdir(fresh.dir / "ingest") == []
        blob.unlink()
        with pytest.raises(LayoutError, match=f"no blobs/sha256/{layer[7:]}"):
            layout.open_blob(got.layers[0])
        with pytest.raises(LayoutError, match="not a sha256 digest"):
            layout.find(digest="sha256:nope")
    fresh.close()
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(LayoutError, match="not a readable tar"):
        OCILayout(tmp_path / "garbage.tar")


def test_writing_refuses_a_directory_that_is_not_a_layout(store: ContentStore,
                                                          tmp_path: Path) -> None:
    desc, _, _ = make_image(store, LAYERS)
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    with pytest.raises(LayoutError, match="not empty and not an OCI layout"):
        write_layout(store, dest, [tagged(desc, "v1")])
    assert os.listdir(dest) == ["precious.txt"]
    with pytest.raises(LayoutError, match="is a directory"):
        write_layout_tar(store, dest, [tagged(desc, "v1")])
    entry = tagged(desc, "v1")
    assert entry.annotations == {ANNOTATION_REF_NAME: "v1"}
