"""Helpers for image export tests: solve a state in-process and export it through the
exporter registry, and read the results back with independent tools (skopeo, umoci)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

import llb
from llb.solver.exporters import ExportContext, export, parse_output
from llb.solver.progress import Recorder
from llb.solver.solve import Solver


def need(*tools: str) -> None:
    """Skip unless every tool is installed (`make test` installs them)."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {tool}; `make test` does)")


def solve_export(root: Path, state: llb.State, output: str, *, snapshotter: str = "native",
                 recorder: Recorder | None = None) -> None:
    """Solve `state` under `root` and export it as `output` (an --output spec)."""
    spec = parse_output(output)
    definition = state.to_definition()
    with Solver(root, snapshotter=snapshotter, progress=recorder) as solver:
        result = solver.solve(definition)
        ctx = ExportContext(root=root, image=definition.image, names=result.names,
                            progress=solver.progress)
        export(spec, result.store, result.ref, ctx)


def skopeo_inspect(target: str, *, raw: bool = False, config: bool = False) -> Any:
    """`skopeo inspect [--raw|--config] TARGET` as JSON."""
    args = ["skopeo", "inspect", "--tls-verify=false"] if target.startswith("docker://") \
        else ["skopeo", "inspect"]
    if raw:
        args.append("--raw")
    if config:
        args.append("--config")
    out = subprocess.run([*args, target], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """`umoci unpack --image LAYOUT:TAG BUNDLE`; the rootfs directory."""
    out = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return bundle / "rootfs"


def untar(archive: Path, dest: Path) -> Path:
    """Extract a (trusted, test-made) tar."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    return dest


def tree(root: Path) -> dict[str, str]:
    """path -> "dir" / "link:TARGET" / "file:MODE:CONTENT" for everything below root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = f"link:{os.readlink(p)}"
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = f"file:{oct(p.stat().st_mode & 0o7777)}:{p.read_text(errors='replace')}"
    return out


def layout_manifest(layout: Path, tag: str = "latest") -> dict[str, Any]:
    """The manifest index.json names `tag` in an OCI layout directory."""
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            digest = entry["digest"].split(":", 1)[1]
            return json.loads((layout / "blobs" / "sha256" / digest).read_text())
    raise AssertionError(f"no image tagged {tag} in {layout}")


def layer_digests(layout: Path, tag: str = "latest") -> list[str]:
    return [d["digest"] for d in layout_manifest(layout, tag)["layers"]]
