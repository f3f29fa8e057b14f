"""OCI facts as code: media types, descriptors, manifests, indexes, image configs and
platforms, parsed from hostile bytes with one clear typed error per defect."""

from __future__ import annotations

import json
import re

import pytest

from llb.content import mediatypes as mt
from llb.content.descriptor import Descriptor
from llb.content.digest import sha256_digest
from llb.content.errors import (DigestMismatchError, InvalidManifestError,
                                PlatformNotFoundError, UnsupportedMediaTypeError)
from llb.content.imageconfig import ImageConfig
from llb.content.manifest import Index, Manifest, parse_manifest
from llb.content.platforms import Platform, best_match, host_platform, matches

D1 = sha256_digest(b"one")
D2 = sha256_digest(b"two")
D3 = sha256_digest(b"three")


def _manifest(**over: object) -> dict:
    m = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
         "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 3},
         "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 3}]}
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def _bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_media_type_facts() -> None:
    assert mt.layer_compression(mt.DOCKER_LAYER_GZIP) == "gzip"
    assert mt.layer_compression(mt.OCI_LAYER_ZSTD) == "zstd"
    assert mt.layer_compression(mt.OCI_LAYER) == "uncompressed"
    assert mt.layer_media_type("zstd") == mt.OCI_LAYER_ZSTD
    assert mt.layer_media_type("gzip", docker=True) == mt.DOCKER_LAYER_GZIP
    with pytest.raises(ValueError, match="cannot hold zstd"):
        mt.layer_media_type("zstd", docker=True)
    assert mt.is_index(mt.DOCKER_MANIFEST_LIST) and mt.is_manifest(mt.DOCKER_MANIFEST)
    assert mt.MANIFEST_ACCEPT.count(",") == 3


def test_manifest_round_trip_is_canonical() -> None:
    m = parse_manifest(_bytes(_manifest(annotations={"a": "b"})), "m")
    assert isinstance(m, Manifest)
    assert m.config.digest == D1 and [d.digest for d in m.layers] == [D2]
    data = m.to_bytes()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    again = parse_manifest(data, "m", expected=m.descriptor())
    assert again == m and again.to_bytes() == data
    assert m.descriptor().digest == sha256_digest(data)


def test_docker_manifest_and_manifest_list_parse() -> None:
    m = parse_manifest(_bytes(_manifest(
        mediaType=mt.DOCKER_MANIFEST,
        config={"mediaType": mt.DOCKER_CONFIG, "digest": D1, "size": 3},
        layers=[{"mediaType": mt.DOCKER_LAYER_GZIP, "digest": D2, "size": 3}])), "m")
    assert isinstance(m, Manifest) and m.media_type == mt.DOCKER_MANIFEST
    idx = parse_manifest(_bytes({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                                 "manifests": [{"mediaType": mt.DOCKER_MANIFEST, "digest": D3,
                                                "size": 7, "platform": {
                                                    "os": "linux", "architecture": "amd64"}}]}),
                         "i")
    assert isinstance(idx, Index)
    assert idx.select(Platform.parse("linux/amd64")).digest == D3


def test_a_manifest_without_media_type_is_told_by_its_fields() -> None:
    m = parse_manifest(_bytes(_manifest(mediaType=None)), "m")
    assert isinstance(m, Manifest) and m.media_type == mt.OCI_MANIFEST
    i = parse_manifest(_bytes({"schemaVersion": 2, "manifests": []}), "i")
    assert isinstance(i, Index)


@pytest.mark.parametrize("data, error, message", [
    (b"\xff\xfe", InvalidManifestError, "m: not UTF-8 text"),
    (b"{", InvalidManifestError, "m: not valid JSON"),
    (b"[1]", InvalidManifestError, "m: not a JSON object"),
    (b'{"schemaVersion": 2, "schemaVersion": 2}', InvalidManifestError, "duplicate key"),
    (b"[" * 100_000 + b"]" * 100_000, InvalidManifestError, "m: "),
    (_bytes(_manifest(mediaType="application/vnd.example+json")), UnsupportedMediaTypeError,
     "unsupported media type 'application/vnd.example+json'"),
    (_bytes({"schemaVersion": 1, "name": "x"}), UnsupportedMediaTypeError, "schema 1"),
    (_bytes(_manifest(mediaType=mt.DOCKER_SCHEMA1_SIGNED)), UnsupportedMediaTypeError,
     "schema 1"),
    (_bytes(_manifest(schemaVersion=3)), InvalidManifestError, "schemaVersion is 3"),
    (_bytes(_manifest(config=None)), InvalidManifestError, "m: config: descriptor is not an"),
    (_bytes(_manifest(layers=None)), InvalidManifestError, "layers missing or not a list"),
    (_bytes(_manifest(layers=[{"mediaType": mt.OCI_LAYER, "size": 1}])), InvalidManifestError,
     "m: layers[0]: digest missing"),
    (_bytes(_manifest(layers=[{"mediaType": mt.OCI_LAYER, "digest": "sha256:12", "size": 1}])),
     InvalidManifestError, "is not a sha256 digest"),
    (_bytes(_manifest(layers=[{"mediaType": mt.OCI_LAYER, "digest": D2, "size": -1}])),
     InvalidManifestError, "size -1 is not a byte count"),
    (_bytes(_manifest(layers=[{"mediaType": mt.OCI_LAYER, "digest": D2, "size": "3"}])),
     InvalidManifestError, "size '3' is not a byte count"),
    (_bytes(_manifest(layers=[{"digest": D2, "size": 3}])), InvalidManifestError,
     "layers[0]: descriptor has no mediaType"),
    (_bytes(_manifest(layers=[{"mediaType": "text/plain", "digest": D2, "size": 3}])),
     UnsupportedMediaTypeError, "layer 0: unsupported media type 'text/plain'"),
    (_bytes(_manifest(layers=[{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff"
                                            ".tar.gzip", "digest": D2, "size": 3}])),
     UnsupportedMediaTypeError, "foreign layers are not supported"),
    (_bytes(_manifest(config={"mediaType": "application/vnd.cncf.helm.config.v1+json",
                              "digest": D1, "size": 3})),
     UnsupportedMediaTypeError, "not a container image"),
    (_bytes(_manifest(manifests=[])), InvalidManifestError, "ambiguous"),
    (_bytes(_manifest(annotations={"a": 1})), InvalidManifestError, "annotations"),
    (_bytes({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 1, "platform": {"os": "linux"}}]}),
     InvalidManifestError, "platform 'architecture' missing"),
])
def test_hostile_manifests_are_one_line_errors(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        parse_manifest(data, "m")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_media_type_claimed_and_declared_must_agree() -> None:
    data = _bytes(_manifest())
    with pytest.raises(InvalidManifestError, match="served as " + re.escape(mt.DOCKER_MANIFEST) + " but says"):
        parse_manifest(data, "m", media_type=mt.DOCKER_MANIFEST)
    assert isinstance(parse_manifest(data, "m", media_type="application/json"), Manifest)
    assert isinstance(parse_manifest(data, "m", media_type=mt.OCI_MANIFEST + "; charset=utf-8"),
                      Manifest)


def test_digest_and_size_of_the_naming_descriptor_are_checked() -> None:
    data = _bytes(_manifest())
    good = Descriptor(mt.OCI_MANIFEST, sha256_digest(data), len(data))
    assert isinstance(parse_manifest(data, "m", expected=good), Manifest)
    with pytest.raises(DigestMismatchError, match="m: size mismatch"):
        parse_manifest(data, "m", expected=Descriptor(mt.OCI_MANIFEST, good.digest, 1))
    with pytest.raises(DigestMismatchError, match="m: digest mismatch: got sha256:"):
        parse_manifest(data, "m", expected=Descriptor(mt.OCI_MANIFEST, D1, len(data)))


def test_platform_parsing_and_normalisation() -> None:
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    assert Platform.parse("linux/x86_64") == Platform.parse("linux/amd64")
    assert Platform.parse("linux/aarch64/v8") == Platform.parse("linux/arm64")
    assert str(Platform.parse("linux/arm")) == "linux/arm/v7"
    assert str(Platform.parse("arm64")) == "linux/arm64"
    assert str(Platform("linux", "armhf").normalized()) == "linux/arm/v7"
    for bad in ("", "linux/", "a/b/c/d"):
        with pytest.raises(ValueError, match="bad platform"):
            Platform.parse(bad)


def test_host_platform_is_this_machine() -> None:
    import platform

    host = host_platform()
    assert host.os == "linux"
    if platform.machine() == "x86_64":
        assert str(host) == "linux/amd64"


def test_platform_matching_prefers_the_exact_variant_then_older_ones() -> None:
    v5, v6, v7 = (Platform("linux", "arm", v) for v in ("v5", "v6", "v7"))
    amd, arm64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")
    cands = [(v5, "v5"), (v6, "v6"), (amd, "amd"), (None, "none"), (v7, "v7")]
    assert best_match(Platform.parse("linux/arm/v7"), cands) == "v7"
    assert best_match(Platform.parse("linux/arm/v6"), cands) == "v6"
    assert best_match(Platform.parse("linux/arm/v7"), cands[:2]) == "v6"
    assert best_match(Platform.parse("linux/arm/v5"), [(v6, "v6")]) is None
    assert best_match(amd, cands) == "amd"
    assert best_match(arm64, cands) is None
    assert matches(arm64, Platform("linux", "arm64", "v8"))
    assert matches(Platform("linux", "amd64", "v3"), amd)
    assert not matches(amd, Platform("linux", "amd64", "v3"))
    assert not matches(amd, Platform("windows", "amd64"))


def test_index_select_names_what_it_offers() -> None:
    idx = Index((Descriptor(mt.OCI_MANIFEST, D1, 1, platform=Platform.parse("linux/arm64")),
                 Descriptor(mt.OCI_MANIFEST, D2, 1, platform=Platform("linux", "s390x")),
                 Descriptor(mt.OCI_MANIFEST, D3, 1)))
    with pytest.raises(PlatformNotFoundError, match=r"no manifest for platform linux/amd64 "
                       r"\(it has: linux/arm64, linux/s390x\)"):
        idx.select(Platform.parse("linux/amd64"), "img")
    assert idx.select(Platform.parse("linux/aarch64")).digest == D1
    again = parse_manifest(idx.to_bytes(), "i")
    assert again == idx


def _config(**over: object) -> dict:
    c = {"architecture": "amd64", "os": "linux",
         "config": {"Env": ["PATH=/bin"], "WorkingDir": "/w", "User": "1:1",
                    "Entrypoint": ["/bin/sh"], "Cmd": None, "Labels": {"a": "b"},
                    "ExposedPorts": {"80/tcp": {}}},
         "rootfs": {"type": "layers", "diff_ids": [D1]},
         "history": [{"created_by": "x"}], "created": "2024-01-01T00:00:00Z",
         "unknown_field": {"kept": True}}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def test_image_config_fields_and_unknown_fields_survive() -> None:
    cfg = ImageConfig.from_bytes(_bytes(_config()))
    assert cfg.env == ["PATH=/bin"] and cfg.working_dir == "/w" and cfg.user == "1:1"
    assert cfg.entrypoint == ["/bin/sh"] and cfg.cmd is None and cfg.labels == {"a": "b"}
    assert cfg.exposed_ports == ["80/tcp"] and cfg.diff_ids == [D1]
    assert str(cfg.platform) == "linux/amd64" and cfg.created == "2024-01-01T00:00:00Z"
    again = ImageConfig.from_bytes(cfg.to_bytes(), digest=cfg.digest(),
                                   size=len(cfg.to_bytes()))
    assert again == cfg and again.raw["unknown_field"] == {"kept": True}
    changed = cfg.replace(created=None, history=[])
    assert changed.created is None and cfg.created is not None


def test_new_image_config_is_deterministic() -> None:
    def make() -> ImageConfig:
        return ImageConfig.new(Platform.parse("linux/arm/v7"), [D1, D2], env=["A=1"],
                               working_dir="/app", user="app", entrypoint=["/app/run"],
                               cmd=["--help"], labels={"l": "v"}, exposed_ports=["443/tcp",
                                                                                   "80/tcp"],
                               history=[{"created_by": "llb"}], created="1970-01-01T00:00:00Z")
    a, b = make(), make()
    assert a.to_bytes() == b.to_bytes()
    assert a.raw["variant"] == "v7" and a.exposed_ports == ["443/tcp", "80/tcp"]
    assert a.diff_ids == [D1, D2] and a.cmd == ["--help"]


@pytest.mark.parametrize("over, message", [
    ({"os": None}, "'os' missing"),
    ({"architecture": 5}, "'architecture' missing or not a string"),
    ({"rootfs": None}, "rootfs missing"),
    ({"rootfs": {"type": "layers", "diff_ids": ["nope"]}}, "diff_ids is not a list of sha256"),
    ({"config": {"Env": "PATH=/bin"}}, "config.Env is not a list of strings"),
    ({"config": {"WorkingDir": 1}}, "config.WorkingDir is not a string"),
    ({"config": {"Labels": {"a": 1}}}, "config.Labels is not a map of strings"),
    ({"history": {}}, "history is not a list of objects"),
])
def test_hostile_configs_are_one_line_errors(over: dict, message: str) -> None:
    with pytest.raises(InvalidManifestError, match="image config: .*" + message.replace(
            "(", r"\(")):
        ImageConfig.from_bytes(_bytes(_config(**over)))


def test_config_and_manifest_layer_counts_must_agree() -> None:
    cfg = ImageConfig.from_bytes(_bytes(_config()))
    m = parse_manifest(_bytes(_manifest()), "m")
    assert isinstance(m, Manifest)
    cfg.check_manifest(m)
    two = Manifest(m.config, m.layers * 2)
    with pytest.raises(InvalidManifestError, match="config lists 1 diff_ids but the manifest "
                       "has 2 layers"):
        cfg.check_manifest(two, "img")
