"""Image exports (type=oci, type=docker): every layer of the result's chain is one blob, the
config carries the state's image config and one history entry per layer, and independent
readers (skopeo, umoci) read what llb writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import llb
from imageexport import (layer_digests, layout_manifest, need, skopeo_inspect, solve_export,
                         tree, umoci_unpack, untar)
from llb.solver.errors import OutputSpecError
from llb.solver.exporters import parse_output
from llb.solver.progress import Recorder



def _base() -> llb.State:
    return llb.scratch().file(
        llb.mkdir("/etc", 0o755).mkfile("/etc/os-release", "NAME=llb\n")
        .mkdir("/bin", 0o755).mkfile("/bin/tool", "#!/bin/sh\necho tool\n", 0o755),
        name="base files")


def _app(base: llb.State) -> llb.State:
    return base.file(llb.mkdir("/app", 0o755).mkfile("/app/main", "main v1\n", 0o755)
                     .rm("/etc/os-release"), name="app files")


def _configured(s: llb.State) -> llb.State:
    return (s.env("PATH", "/bin").env("MODE", "prod").cwd("/app").user("1000:1000")
            .entrypoint(["/app/main"]).cmd(["--serve"]).label("org.example.team", "build")
            .expose(8080, "53/udp"))


def test_oci_tar_is_read_by_skopeo_and_umoci(tmp_path: Path) -> None:
    need("skopeo", "umoci")
    out = tmp_path / "image.tar"
    solve_export(tmp_path / "root", _configured(_app(_base())),
                 f"type=oci,dest={out},name=example.com/team/app:v1")
    info = skopeo_inspect(f"oci-archive:{out}:v1")
    assert len(info["Layers"]) == 2
    assert info["Env"] == ["PATH=/bin", "MODE=prod"]
    assert info["Labels"] == {"org.example.team": "build"}
    config = skopeo_inspect(f"oci-archive:{out}:v1", config=True)
    assert config["config"]["Entrypoint"] == ["/app/main"]
    assert config["config"]["Cmd"] == ["--serve"]
    assert config["config"]["WorkingDir"] == "/app"
    assert config["config"]["User"] == "1000:1000"
    assert sorted(config["config"]["ExposedPorts"]) == ["53/udp", "8080/tcp"]
    assert [h["created_by"] for h in config["history"]] == ["base files", "app files"]
    layout = untar(out, tmp_path / "layout")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "v1",
        "io.containerd.image.name": "example.com/team/app:v1"}
    rootfs = umoci_unpack(layout, "v1", tmp_path / "bundle")
    got = tree(rootfs)
    assert got["app/main"] == "file:0o755:main v1\n"
    assert got["bin/tool"] == "file:0o755:#!/bin/sh\necho tool\n"
    assert "etc/os-release" not in got and got["etc"] == "dir"  # the whiteout applied


def test_oci_directory_is_added_to_and_read_by_umoci(tmp_path: Path) -> None:
    need("skopeo", "umoci")
    layout = tmp_path / "layout"
    root = tmp_path / "root"
    solve_export(root, _base(), f"type=oci,dest={layout}/,name=app:base")
    solve_export(root, _app(_base()), f"type=oci,dest={layout},name=app:full")
    names = [e["annotations"]["org.opencontainers.image.ref.name"]
             for e in json.loads((layout / "index.json").read_text())["manifests"]]
    assert sorted(names) == ["base", "full"]
    assert skopeo_inspect(f"oci:{layout}:full")["Layers"][0] == \
        skopeo_inspect(f"oci:{layout}:base")["Layers"][0]
    got = tree(umoci_unpack(layout, "full", tmp_path / "bundle"))
    assert got["app/main"] == "file:0o755:main v1\n"


def test_docker_archive_is_read_by_skopeo(tmp_path: Path) -> None:
    need("skopeo", "umoci")
    out = tmp_path / "image.tar"
    solve_export(tmp_path / "root", _configured(_app(_base())),
                 f"type=docker,dest={out},name=127.0.0.1:5000/app:v2")
    info = skopeo_inspect(f"docker-archive:{out}")
    assert len(info["Layers"]) == 2 and info["Env"] == ["PATH=/bin", "MODE=prod"]
    members = untar(out, tmp_path / "archive")
    manifest = json.loads((members / "manifest.json").read_text())
    assert manifest[0]["RepoTags"] == ["127.0.0.1:5000/app:v2"]
    assert len(manifest[0]["Layers"]) == 2
    copied = tmp_path / "copied"
    import subprocess

    r = subprocess.run(["skopeo", "copy", f"docker-archive:{out}", f"oci:{copied}:x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = tree(umoci_unpack(copied, "x", tmp_path / "bundle"))
    assert got["app/main"] == "file:0o755:main v1\n" and "etc/os-release" not in got


def test_merge_image_is_its_inputs_blobs_in_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    a = llb.scratch().file(llb.mkdir("/a").mkfile("/a/1", "a1")).file(llb.mkfile("/a/2", "a2"))
    b = llb.scratch().file(llb.mkdir("/b").mkfile("/b/1", "b1"))
    for name, state in (("a", a), ("b", b), ("m", llb.merge([a, b]))):
        solve_export(root, state, f"type=oci,dest={tmp_path / 'layout'}/,name=x:{name}")
    layout = tmp_path / "layout"
    merged = layer_digests(layout, "m")
    assert len(merged) == 3
    assert merged == layer_digests(layout, "a") + layer_digests(layout, "b")


def test_rebase_reuses_the_app_blobs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    layout = tmp_path / "layout"
    oldbase = llb.scratch().file(llb.mkfile("/base", "old"))
    newbase = llb.scratch().file(llb.mkfile("/base", "new"))
    app = oldbase.file(llb.mkdir("/app").mkfile("/app/a", "1")).file(llb.mkfile("/app/b", "2"))
    solve_export(root, app, f"type=oci,dest={layout}/,name=x:app")
    solve_export(root, llb.merge([newbase, llb.diff(oldbase, app)]),
                 f"type=oci,dest={layout}/,name=x:rebased")
    app_layers, rebased = layer_digests(layout, "app"), layer_digests(layout, "rebased")
    assert len(rebased) == 3
    assert rebased[1:] == app_layers[1:]  # the app's two layers, byte for byte
    assert rebased[0] != app_layers[0]


def test_source_date_epoch_makes_exports_byte_identical(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    state = _configured(_app(_base()))
    outs = []
    for i in range(2):
        out = tmp_path / f"image{i}.tar"
        solve_export(tmp_path / f"root{i}", state, f"type=oci,dest={out},name=app:v1")
        outs.append(out.read_bytes())
        docker = tmp_path / f"docker{i}.tar"
        solve_export(tmp_path / f"root{i}", state, f"type=docker,dest={docker},name=app:v1")
        outs.append(docker.read_bytes())
    assert outs[0] == outs[2] and outs[1] == outs[3]
    layout = untar(tmp_path / "image0.tar", tmp_path / "layout")
    config_digest = layout_manifest(layout, "v1")["config"]["digest"].split(":")[1]
    config = json.loads((layout / "blobs" / "sha256" / config_digest).read_text())
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in config["history"]} == {"2023-11-14T22:13:20Z"}


def test_an_empty_result_is_an_image_without_layers(tmp_path: Path) -> None:
    need("skopeo")
    out = tmp_path / "image.tar"
    solve_export(tmp_path / "root", llb.scratch().cmd(["true"]), f"type=oci,dest={out}")
    assert skopeo_inspect(f"oci-archive:{out}:latest")["Layers"] == []


@pytest.mark.parametrize("compression", ["uncompressed", "zstd"])
def test_other_compressions(tmp_path: Path, compression: str) -> None:
    need("skopeo", "umoci")
    if compression == "zstd":
        pytest.importorskip("zstandard")
    layout = tmp_path / "layout"
    level = ",compression-level=3" if compression == "zstd" else ""
    solve_export(tmp_path / "root", _app(_base()),
                 f"type=oci,dest={layout}/,compression={compression}{level}")
    media = {d["mediaType"] for d in layout_manifest(layout)["layers"]}
    want = {"uncompressed": "application/vnd.oci.image.layer.v1.tar",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}[compression]
    assert media == {want}
    if compression == "uncompressed":  # umoci 0.4 reads no zstd
        got = tree(umoci_unpack(layout, "latest", tmp_path / "bundle"))
        assert got["app/main"] == "file:0o755:main v1\n"


def test_export_reports_as_one_more_line(tmp_path: Path) -> None:
    rec = Recorder()
    solve_export(tmp_path / "root", _app(_base()), f"type=oci,dest={tmp_path / 'i.tar'}",
                 recorder=rec)
    export_events = [e for e in rec.events if e["vertex"] == "export"]
    kinds = [e["event"] for e in export_events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert {e["index"] for e in export_events} == {rec.total + 1}
    progress = [e for e in export_events if e["event"] == "progress"]
    assert progress and all(e["current"] <= e["total"] for e in progress)


@pytest.mark.parametrize("spec, message", [
    ("type=oci", "needs dest="),
    ("type=oci,dest=x.tar,compression=lz4", "compression='lz4'"),
    ("type=oci,dest=x.tar,compression=gzip,compression-level=12", "levels are 0 to 9"),
    ("type=oci,dest=x.tar,compression=uncompressed,compression-level=1", "needs compression="),
    ("type=oci,dest=x.tar,compression-level=fast", "levels are"),
    ("type=oci,dest=x.tar,name=Bad/Name", "name:"),
    ("type=oci,dest=x.tar,name=app@sha256:" + "0" * 64, "pinned to a digest"),
    ("type=oci,dest=x.tar,tar=maybe", "tar='maybe'"),
    ("type=oci,dest=x.tar,bogus=1", "unknown option 'bogus'"),
    ("type=docker,dest=x.tar,compression=zstd", "zstd"),
    ("type=docker,dest=x.tar,oci-mediatypes=true", "type=oci"),
    ("type=image", "needs name="),
    ("type=image,name=app,push=maybe", "push='maybe'"),
    ("type=registry,name=app,dest=x", "unknown option 'dest'"),
    ("type=image,name=app,oci-mediatypes=false,compression=zstd", "zstd layers need OCI"),
])
def test_bad_specs_are_refused_before_solving(tmp_path: Path, spec: str, message: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputSpecError, match=message):
        parse_output(spec)
    assert os.listdir(tmp_path) == []


def test_a_bad_source_date_epoch_is_refused(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(OutputSpecError, match="SOURCE_DATE_EPOCH"):
        parse_output(f"type=oci,dest={tmp_path / 'x.tar'}")


def test_a_full_directory_that_is_no_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("mine")
    with pytest.raises(OutputSpecError, match="not an OCI layout"):
        parse_output(f"type=oci,dest={tmp_path / 'd'},tar=false")
