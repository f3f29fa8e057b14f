"""Side by side with real BuildKit v0.11.6: the same merge program pushed as an image by
buildkitd (`buildctl build --output type=image,...,push=true,registry.insecure=true`) and by
llb (`type=image,push=true`) to the same local registry has the same number of layers and
the same file tree in each layer (entries, kinds, modes, owners, contents, link targets;
times are not compared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bkhelp import BUILDCTL
from layerhelp import layer_tree

LLB = str(Path(sys.executable).parent / "llb")

PROGRAM = '''
import llb


def build():
    a = (llb.scratch()
         .file(llb.mkdir("/etc", 0o755).mkfile("/etc/a.conf", "a\\n", 0o644), name="a1")
         .file(llb.mkdir("/srv/a", 0o750, parents=True).mkfile("/srv/a/data", "x" * 3000),
               name="a2"))
    base = llb.scratch().file(llb.mkdir("/etc", 0o755).mkfile("/etc/old", "old\\n")
                              .mkfile("/etc/keep", "keep\\n"), name="base")
    app = (base.file(llb.rm("/etc/old").mkdir("/app", 0o755)
                     .mkfile("/app/run", "#!/bin/sh\\n", 0o755), name="app1")
           .file(llb.mkfile("/app/VERSION", "1\\n"), name="app2"))
    b = llb.scratch().file(llb.mkdir("/b").mkfile("/b/file", "b\\n", 0o600), name="b")
    return llb.merge([a, llb.diff(base, app), b])
'''



def _layer_trees(ref: str, tmp: Path) -> list[dict[str, tuple]]:
    """Each layer of the pushed image `ref` as path -> (kind, mode, uid, gid, content)."""
    tmp.mkdir(parents=True, exist_ok=True)
    layout = tmp / "layout"
    r = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{layout}:x"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: (layout / "blobs" / "sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    return [layer_tree(blob(layer["digest"])) for layer in manifest["layers"]]


def test_merge_image_matches_buildkits_layer_by_layer(tmp_path, buildkitd, registry) -> None:
    from imageexport import need, solve_export

    need("skopeo")
    build = tmp_path / "build.py"
    build.write_text(PROGRAM)
    pb = subprocess.run([LLB, "marshal", str(build), "-o", "-", "--format", "buildkit"],
                        capture_output=True, timeout=60)
    assert pb.returncode == 0, pb.stderr
    theirs_ref = f"{registry.host}/diff/buildkit-{buildkitd.snapshotter}:1"
    bk = subprocess.run([str(BUILDCTL), "--addr", buildkitd.addr, "build", "--output",
                         f"type=image,name={theirs_ref},push=true,registry.insecure=true"],
                        input=pb.stdout, capture_output=True, timeout=300)
    assert bk.returncode == 0, bk.stderr.decode()[-3000:]

    import importlib.util

    spec = importlib.util.spec_from_file_location("_image_program", build)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours_ref = f"{registry.host}/diff/llb-{buildkitd.snapshotter}:1"
    solve_export(tmp_path / "root", module.build(), f"type=image,name={ours_ref},push=true",
                 snapshotter=buildkitd.snapshotter)

    theirs = _layer_trees(theirs_ref, tmp_path / "theirs")
    ours = _layer_trees(ours_ref, tmp_path / "ours")
    assert len(ours) == len(theirs) == 5
    for i, (o, t) in enumerate(zip(ours, theirs)):
        assert o == t, f"layer {i} differs"
