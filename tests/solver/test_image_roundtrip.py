"""The whole image cycle against a real registry: push an image llb built, pull it back by
tag and by digest, run a command on it, merge it with an app and push the result, whose base
layers the registry mounts from the first repository instead of receiving them again."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import llb
from exechelp import BUSYBOX, needs_runc
from faultserver import Proxy
from imageexport import need, skopeo_inspect
from llb.solver.exporters import ExportContext, export, parse_output
from llb.solver.solve import Solver

REPO = Path(__file__).resolve().parents[2]


def _busybox() -> llb.State:
    path = REPO / "examples" / "busybox" / "build.py"
    spec = importlib.util.spec_from_file_location("_bb_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.busybox()


def _solve(root: Path, state: llb.State, output: str | None = None) -> None:
    definition = state.to_definition()
    with Solver(root) as solver:
        result = solver.solve(definition, {"busybox": BUSYBOX.parent})
        if output is not None:
            ctx = ExportContext(root=root, image=definition.image, names=result.names,
                                progress=solver.progress)
            export(parse_output(output), result.store, result.ref, ctx)


@needs_runc
def test_push_pull_run_merge_push(registry, tmp_path: Path) -> None:
    need("skopeo")
    proxy = Proxy(registry.host)
    try:
        base_ref = f"{proxy.host}/cycle/base:1"
        _solve(tmp_path / "build-root", _busybox().cmd(["sh"]),
               f"type=image,name={base_ref},push=true")
        raw = skopeo_inspect(f"docker://{registry.host}/cycle/base:1", raw=True)
        digest = skopeo_inspect(f"docker://{registry.host}/cycle/base:1")["Digest"]
        base_layers = [layer["digest"] for layer in raw["layers"]]

        # a fresh root: pulled back by tag, a command run on it
        root = tmp_path / "root"
        ran = llb.image(base_ref).run(["sh", "-c", "ls /bin/busybox > /listing"]).root()
        _solve(root, ran, f"type=local,dest={tmp_path / 'ran'}")
        assert (tmp_path / "ran" / "listing").read_text() == "/bin/busybox\n"

        # by digest
        pinned = llb.image(f"{proxy.host}/cycle/base@{digest}")
        _solve(root, pinned.file(llb.mkfile("/pinned", "yes")),
               f"type=local,dest={tmp_path / 'pinned'}")
        assert (tmp_path / "pinned" / "bin" / "busybox").is_file()

        # merged with an app, pushed to another repository of the same registry
        app = llb.scratch().file(llb.mkdir("/app").mkfile("/app/run", "#!/bin/sh\n", 0o755))
        proxy.requests.clear()
        _solve(root, llb.merge([llb.image(base_ref), app]),
               f"type=image,name={proxy.host}/cycle/app:1,push=true")
        mounts = [p for m, p, _ in proxy.requests if m == "POST" and "mount=" in p]
        uploads = [p for m, p, _ in proxy.requests if m in ("PUT", "PATCH") and "/blobs/" in p]
        assert len(mounts) == len(base_layers)  # every base layer mounted, none uploaded
        assert len(uploads) == 2  # the app's layer and the config
        merged = skopeo_inspect(f"docker://{registry.host}/cycle/app:1", raw=True)
        assert [layer["digest"] for layer in merged["layers"]][:len(base_layers)] == base_layers
        config = skopeo_inspect(f"docker://{registry.host}/cycle/app:1", config=True)
        assert json.dumps(config["rootfs"]["diff_ids"]).count("sha256:") == len(base_layers) + 1
    finally:
        proxy.stop()
