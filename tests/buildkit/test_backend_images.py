"""Image outputs and image sources with `llb solve --backend buildkit`, against a real
buildkitd (both snapshotters) and a real registry on 127.0.0.1: an OCI layout whose layers
hold the same file trees as the local backend's, a Docker archive, a push that llb pulls back
and runs a command on, `llb.image()` and `llb.oci_layout()` sources solved by buildkitd, and
what BuildKit v0.11.6 cannot do refused as one line, exit 2, before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bkhelp import BUILDCTL
from layerhelp import layer_tree

LLB = str(Path(sys.executable).parent / "llb")
REPO = Path(__file__).resolve().parents[2]
BB = str(REPO / "examples/busybox/build.py")

MERGE = '''
import llb


def build():
    a = llb.scratch().file(llb.mkdir("/etc", 0o755).mkfile("/etc/a.conf", "a\\n"), name="a")
    base = llb.scratch().file(llb.mkdir("/etc", 0o755).mkfile("/etc/old", "old\\n")
                              .mkfile("/etc/keep", "keep\\n"), name="base")
    app = base.file(llb.rm("/etc/old").mkdir("/app", 0o750)
                    .mkfile("/app/run", "#!/bin/sh\\n", 0o755),
                    name="app")
    b = llb.scratch().file(llb.mkdir("/b").mkfile("/b/file", "b\\n", 0o600), name="b")
    return llb.merge([a, llb.diff(base, app), b])
'''

APP = f'''import importlib.util, llb
spec = importlib.util.spec_from_file_location("bb", {BB!r})
bb = importlib.util.module_from_spec(spec); spec.loader.exec_module(bb)

def build():
    return (bb.busybox().run(["sh", "-c", "echo built > /a.txt"], name="write a").root()
            .env("GREETING", "hello").cmd(["sh"]))
'''


# what a test checks does not depend on the daemon's snapshotter: one daemon is enough
ONE_SNAPSHOTTER = pytest.mark.parametrize("buildkitd", ["overlayfs"], indirect=True)


def _llb(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LLB, *args], capture_output=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _remote(daemon, build: Path, *args: str, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    return _llb("solve", str(build), "--backend", "buildkit", "--addr", daemon.addr,
                "--buildctl", str(BUILDCTL), "--progress", "plain", *args, env=env)


def _local(root: Path, snapshotter: str, build: Path, *args: str) -> subprocess.CompletedProcess:
    return _llb("solve", str(build), "--root", str(root), "--snapshotter", snapshotter,
                "--progress", "plain", *args)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _blob(layout: tarfile.TarFile, digest: str) -> bytes:
    f = layout.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
    assert f is not None
    return f.read()


def _manifest(archive: Path) -> tuple[dict, list[bytes], list[dict]]:
    """An OCI layout tar's index.json, its one image's layer blobs and their descriptors."""
    with tarfile.open(archive) as t:
        index = json.loads(_blob_file(t, "index.json"))
        manifest = json.loads(_blob(t, index["manifests"][0]["digest"]))
        return index, [_blob(t, d["digest"]) for d in manifest["layers"]], manifest["layers"]


def _blob_file(t: tarfile.TarFile, name: str) -> bytes:
    f = t.extractfile(name)
    assert f is not None
    return f.read()


def test_oci_output_has_the_local_backends_layer_trees(tmp_path, buildkitd):
    from imageexport import need, tree, umoci_unpack, untar

    need("umoci")
    build = _write(tmp_path / "build.py", MERGE)
    theirs, ours = tmp_path / "bk.tar", tmp_path / "llb.tar"
    p = _remote(buildkitd, build, "--output", f"type=oci,dest={theirs},name=t/merge:v1")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    p = _local(tmp_path / "root", buildkitd.snapshotter, build,
               "--output", f"type=oci,dest={ours},name=t/merge:v1")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    index, bk_layers, bk_descs = _manifest(theirs)
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    _, llb_layers, _ = _manifest(ours)
    assert len(bk_layers) == len(llb_layers) == 3  # a, the diff (base, app), b
    assert [d["mediaType"] for d in bk_descs] == \
        ["application/vnd.oci.image.layer.v1.tar+gzip"] * 3
    for i, (t, o) in enumerate(zip(bk_layers, llb_layers)):
        assert layer_tree(t) == layer_tree(o), f"layer {i} differs"
    assert layer_tree(bk_layers[1])["app"][:2] == ("dir", 0o750)
    # and the images unpack to the same root (umoci applies the layers, whiteouts included)
    rootfs = [tree(umoci_unpack(untar(a, tmp_path / f"{a.stem}-layout"), "v1",
                                tmp_path / f"{a.stem}-bundle")) for a in (theirs, ours)]
    assert rootfs[0] == rootfs[1]
    assert "etc/old" not in rootfs[0] and rootfs[0]["app/run"] == "file:0o755:#!/bin/sh\n"


@ONE_SNAPSHOTTER
def test_docker_archive_and_directory_layout(tmp_path, buildkitd):
    build = _write(tmp_path / "build.py", MERGE)
    archive = tmp_path / "d.tar"
    p = _remote(buildkitd, build, "--output",
                f"type=docker,dest={archive},name=t/docker:1,compression=uncompressed")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    with tarfile.open(archive) as t:
        [entry] = json.loads(_blob_file(t, "manifest.json"))
        assert entry["RepoTags"] == ["t/docker:1"]
        manifest = json.loads(_blob(t, json.loads(_blob_file(t, "index.json"))
                                    ["manifests"][0]["digest"]))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {d["mediaType"] for d in manifest["layers"]} == \
        {"application/vnd.docker.image.rootfs.diff.tar"}
    layout = tmp_path / "layout"
    p = _remote(buildkitd, build, "--output", f"type=oci,dest={layout}/,name=t/dir:2")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    index = json.loads((layout / "index.json").read_text())
    # BuildKit v0.11.6 names a directory layout's image by its full name, not its tag
    # (README: known differences)
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == \
        "docker.io/t/dir:2"
    assert (layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).is_file()


def test_push_through_the_backend_then_pull_and_run_locally(tmp_path, buildkitd, registry):
    from imageexport import skopeo_inspect

    app = _write(tmp_path / "app.py", APP)
    ref = f"{registry.host}/bk/app-{buildkitd.snapshotter}:1"
    p = _remote(buildkitd, app, "--local", "busybox=/bin", "--output",
                f"type=image,name={ref},push=true,compression=zstd")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    manifest = skopeo_inspect(f"docker://{ref}", raw=True)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert {d["mediaType"] for d in manifest["layers"]} == \
        {"application/vnd.oci.image.layer.v1.tar+zstd"}
    config = skopeo_inspect(f"docker://{ref}", config=True)["config"]
    assert "GREETING=hello" in config["Env"] and config["Cmd"] == ["sh"]
    use = _write(tmp_path / "use.py", f'''import llb
def build():
    return llb.image("{ref}").run(["sh", "-c", "cat /a.txt > /out.txt; echo $GREETING >> /out.txt"]).root()
''')
    out = tmp_path / "out"
    p = _local(tmp_path / "root", buildkitd.snapshotter, use,
               "--output", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert (out / "out.txt").read_text() == "built\nhello\n"


@ONE_SNAPSHOTTER
def test_image_source_built_on_the_backend(tmp_path, buildkitd, registry):
    from bkhelp import tree

    merge = _write(tmp_path / "merge.py", MERGE)
    ref = f"{registry.host}/bk/source-{buildkitd.snapshotter}:1"
    p = _local(tmp_path / "root", buildkitd.snapshotter, merge,
               "--output", f"type=image,name={ref},push=true")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    build = _write(tmp_path / "build.py", f'''import llb
def build():
    return llb.image("{ref}").file(llb.mkfile("/added", "x\\n").rm("/etc/keep"))
''')
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    p = _remote(buildkitd, build, "--root", str(tmp_path / "resolve"),
                "--output", f"type=local,dest={theirs}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    p = _local(tmp_path / "root", buildkitd.snapshotter, build,
               "--output", f"type=local,dest={ours}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert tree(theirs) == tree(ours)
    assert (theirs / "added").read_text() == "x\n" and (theirs / "app/run").exists()
    assert not (theirs / "etc/keep").exists() and not (theirs / "etc/old").exists()


@ONE_SNAPSHOTTER
def test_oci_layout_source_on_the_backend(tmp_path, buildkitd):
    from bkhelp import tree

    merge = _write(tmp_path / "merge.py", MERGE)
    layout = tmp_path / "layout"
    p = _local(tmp_path / "root", buildkitd.snapshotter, merge,
               "--output", f"type=oci,dest={layout}/,name=app:v1")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    build = _write(tmp_path / "build.py", f'''import llb
def build():
    return llb.oci_layout("lay", tag="v1").file(llb.mkfile("/d", "d\\n"))
def by_path():
    return llb.oci_layout({str(layout)!r}, tag="v1").file(llb.mkfile("/e", "e\\n"))
''')
    out = tmp_path / "out"
    p = _remote(buildkitd, build, "--oci-layout", f"lay={layout}",
                "--output", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert (out / "d").read_text() == "d\n" and (out / "b/file").read_text() == "b\n"
    ours = tmp_path / "ours"
    p = _local(tmp_path / "root", buildkitd.snapshotter, build, "--oci-layout",
               f"lay={layout}", "--output", f"type=local,dest={ours}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert tree(out) == tree(ours)
    p = _remote(buildkitd, build, "--target", "by_path", "--output",
                f"type=local,dest={tmp_path / 'out2'}")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert (tmp_path / "out2/e").read_text() == "e\n"


# ---------------------------------------------------------------- refused, exit 2


def _one_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, p.stderr
    errors = [line for line in p.stderr.decode().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in p.stderr.decode(), p.stderr
    return errors[0]


def _offline(build: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The backend with no daemon: what is refused must be refused before it is asked."""
    return _llb("solve", str(build), "--backend", "buildkit", "--addr", "unix:///nonexistent",
                "--buildctl", sys.executable, "--progress", "plain", *args, env=env)


def test_source_date_epoch_with_an_image_output_is_refused(tmp_path):
    build = _write(tmp_path / "build.py", MERGE)
    dest = tmp_path / "x.tar"
    line = _one_error(_offline(build, "--output", f"type=oci,dest={dest}",
                               env={"SOURCE_DATE_EPOCH": "10"}))
    assert "SOURCE_DATE_EPOCH with --backend buildkit: BuildKit v0.11.6 cannot clamp the " \
           "layers' file times" in line
    assert not dest.exists()


def test_an_image_of_scratch_is_refused(tmp_path):
    build = _write(tmp_path / "build.py", "import llb\ndef build():\n    return llb.scratch()\n")
    line = _one_error(_offline(build, "--output", "type=image,name=x/y:z"))
    assert "the result is empty (scratch)" in line


def test_a_tar_layout_and_an_unmapped_layout_are_refused(tmp_path):
    merge = _write(tmp_path / "merge.py", MERGE)
    archive = tmp_path / "layout.tar"
    p = _local(tmp_path / "root", "native", merge,
               "--output", f"type=oci,dest={archive},name=app:v1")
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    build = _write(tmp_path / "build.py", 'import llb\ndef build():\n'
                   '    return llb.oci_layout("lay", tag="v1")\n')
    line = _one_error(_offline(build, "--root", str(tmp_path / "root"),
                               "--oci-layout", f"lay={archive}"))
    assert f"OCI layout {archive}: a tar, not a directory (buildctl --oci-layout" in line
    line = _one_error(_offline(build, "--root", str(tmp_path / "root")))
    assert "no --oci-layout mapping for layout 'lay'" in line


@pytest.mark.parametrize("spec,expected", [
    ("type=registry,name=r/x,push=true",
     ["type=image", "name=r/x", "push=true", "oci-mediatypes=true"]),
    ("type=image,name=r/x,oci-mediatypes=false,registry.insecure=true",
     ["type=image", "name=r/x", "oci-mediatypes=false", "registry.insecure=true"]),
    ("type=oci,dest=-,compression=zstd,compression-level=3",
     ["type=oci", "dest=-", "compression=zstd", "compression-level=3",
      "force-compression=true"]),
    ("type=oci,dest=/tmp/lay/", ["type=oci", "dest=/tmp/lay", "tar=false"]),
    ("type=docker,dest=/tmp/d.tar,name=n:1", ["type=docker", "dest=/tmp/d.tar", "name=n:1"]),
    ("type=tar,dest=-", ["type=tar", "dest=-"]),
])
def test_buildctl_output_spelling(spec, expected):
    import csv

    from llb.remote.outputs import buildctl_output
    from llb.solver.exporters import parse_output

    assert next(csv.reader([buildctl_output(parse_output(spec))])) == expected


def test_image_config_goes_as_containerimage_config():
    import csv

    from llb.imagemeta import ImageMeta
    from llb.remote.outputs import buildctl_output
    from llb.solver.exporters import parse_output

    meta = ImageMeta(env=("A=1,2", 'Q="x"'), cmd=("sh",), working_dir="/w")
    fields = next(csv.reader([buildctl_output(parse_output("type=image,name=r/x"), meta)]))
    key, _, value = fields[-1].partition("=")
    assert key == "containerimage.config"
    config = json.loads(value)["config"]
    assert config == {"Env": ["A=1,2", 'Q="x"'], "Cmd": ["sh"], "WorkingDir": "/w"}
