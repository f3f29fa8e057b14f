"""Image sources against a real registry (Debian's docker-registry on 127.0.0.1): images llb
built and pushed are pulled back by tag and by digest, run on (their config's Env and
WorkingDir reach the run), merged with an app; pulling is lazy (a merge of images packed
for export downloads no layer); a pinned image is solved again from the cache with the
registry stopped; a platform is picked from an index; OCI layouts by name and path; a
forged diff_id is one error line; byte progress is reported; both snapshotters."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import llb
from llb.content.platforms import Platform, host_platform
from llb.content.store import ContentStore
from llb.solver.layerblobs import layer_blobs
from llb.solver.solve import Solver
from exechelp import needs_runc
from faultserver import Proxy
from pushhelp import busybox_state, image_of, index_of, push, write_oci_layout
from registryhelp import PASSWORD, USER, Registry, docker_config
from solvehelp import LLB, write

pytestmark = needs_runc

GREETING = "hello from the image"


@dataclass
class Pushed:
    root: Path        # the root that built it (its content store holds every blob)
    host: str
    name: str         # HOST/test/busybox
    tag_ref: str      # HOST/test/busybox:1
    digest: str       # what the tag names
    layers: list[str]


@pytest.fixture(scope="session")
def busybox(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """examples/busybox's root with a /work directory, pushed as HOST/test/busybox:1 with
    Env GREETING and WorkingDir /work."""
    root = tmp_path_factory.mktemp("image-root")
    state = busybox_state().file(llb.mkdir("/work", 0o755))
    desc, blobs = image_of(root, state, env=("PATH=/bin", f"GREETING={GREETING}"),
                           working_dir="/work")
    name = f"{registry.host}/test/busybox"
    digest = push(root, desc, f"{name}:1")
    return Pushed(root, registry.host, name, f"{name}:1", digest, [b.digest for b in blobs])


@pytest.fixture(scope="session")
def app(busybox: Pushed, registry: Registry) -> Pushed:
    """A one-layer image of /app files (no base), pushed as HOST/test/app:1."""
    state = llb.scratch().file(llb.mkdir("/app").mkfile("/app/hello", b"hi from app\n"))
    desc, blobs = image_of(busybox.root, state, env=())
    name = f"{registry.host}/test/app"
    digest = push(busybox.root, desc, f"{name}:1")
    return Pushed(busybox.root, registry.host, name, f"{name}:1", digest,
                  [b.digest for b in blobs])


def _build(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "build.py", "import llb\n\ndef build():\n" + body)


def test_pull_by_tag_and_run_with_the_image_config(llb_root: LLB, tmp_path: Path,
                                                   busybox: Pushed) -> None:
    build = _build(tmp_path, f"    base = llb.image({busybox.tag_ref!r})\n"
                   "    return base.run(['sh', '-c', 'echo $GREETING > greeting; pwd > where'])"
                   ".root()\n")
    out = tmp_path / "out"
    r = llb_root.solve(build, "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert (out / "work/greeting").read_text() == GREETING + "\n"
    assert (out / "work/where").read_text() == "/work\n"
    assert (out / "bin/busybox").is_file() and os.readlink(out / "bin/sh") == "/bin/busybox"
    source = [e for e in r.events if e["event"] == "done"
              and e["name"].startswith("docker-image://")]
    assert len(source) == 1
    assert source[0]["name"] == f"docker-image://{busybox.tag_ref}@{busybox.digest}"
    progress = [e for e in r.events if e["event"] == "progress"]
    assert progress and {e["vertex"] for e in progress} == {source[0]["vertex"]}
    finals = {e["id"]: (e["current"], e["total"]) for e in progress}
    assert set(finals) == set(busybox.layers)
    assert all(cur == total for cur, total in finals.values())
    again = llb_root.solve(build, "--output", f"type=local,dest={tmp_path / 'again'}")
    assert again.code == 0 and set(again.terminal().values()) == {"cached"}


def test_pull_by_digest_merge_with_an_app_and_run(llb_root: LLB, tmp_path: Path,
                                                  busybox: Pushed, app: Pushed) -> None:
    build = _build(tmp_path, f"    base = llb.image({busybox.name + '@' + busybox.digest!r})\n"
                   f"    app = llb.image({app.tag_ref!r})\n"
                   "    merged = llb.merge([base, app])\n"
                   "    return merged.run(['sh', '-c', 'cat /app/hello > /work/copied']).root()\n")
    out = tmp_path / "out"
    r = llb_root.solve(build, "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert (out / "work/copied").read_text() == "hi from app\n"
    assert (out / "app/hello").read_text() == "hi from app\n"


def test_a_merge_of_images_packed_for_export_downloads_no_layer(
        tmp_path: Path, busybox: Pushed, app: Pushed, registry: Registry) -> None:
    proxy = Proxy(registry.host)
    try:
        host = proxy.host
        state = llb.merge([llb.image(f"{host}/test/busybox:1"), llb.image(f"{host}/test/app:1")])
        with Solver(tmp_path / "root") as solver:
            ref = solver.solve(state.to_definition()).ref
            content = ContentStore(tmp_path / "root")
            try:
                blobs = layer_blobs(solver.store, content, ref, compression="zstd")
                assert [b.digest for b in blobs] == busybox.layers + app.layers
                assert all(b.source in (f"{host}/test/busybox", f"{host}/test/app")
                           for b in blobs)
                assert not any(content.exists(d) for d in busybox.layers + app.layers)
            finally:
                content.close()
            assert all(solver.store.is_lazy(layer.id) for layer in ref.layer_chain())
        blob_gets = [p for m, p, _ in proxy.requests if m == "GET" and "/blobs/" in p]
        assert not any(d in p for p in blob_gets for d in busybox.layers + app.layers)
        assert any("/manifests/" in p for _, p, _ in proxy.requests)  # it did resolve
    finally:
        proxy.stop()


def test_a_pinned_image_is_solved_again_with_the_registry_stopped(
        llb_root: LLB, tmp_path: Path, busybox: Pushed) -> None:
    own = Registry(tmp_path / "registry")
    try:
        name = f"{own.host}/test/busybox"
        desc_digest = push(busybox.root, _manifest_of(busybox), f"{name}:1")
        pinned = _build(tmp_path / "pinned", f"    base = llb.image({name + '@' + desc_digest!r})\n"
                        "    return base.run(['sh', '-c', 'echo ran > /work/ran']).root()\n")
        tagged = _build(tmp_path / "tagged", f"    return llb.image({name + ':1'!r})\n")
        assert llb_root.solve(pinned).code == 0
    finally:
        own.stop()
    out = tmp_path / "out"
    r = llb_root.solve(pinned, "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert set(r.terminal().values()) == {"cached"}
    assert (out / "work/ran").read_text() == "ran\n"
    r = llb_root.solve(tagged)
    assert r.code == 1 and f"cannot reach registry {own.host}" in r.stderr


def _manifest_of(pushed: Pushed):
    from llb.content import mediatypes as mt
    from llb.content.descriptor import Descriptor

    content = ContentStore(pushed.root)
    try:
        info = content.info(pushed.digest)
        return Descriptor(mt.OCI_MANIFEST, pushed.digest, info.size)
    finally:
        content.close()


def test_a_platform_is_picked_from_an_index(tmp_path: Path, busybox: Pushed,
                                            registry: Registry) -> None:
    host = host_platform()
    other = Platform("linux", "arm64" if host.architecture != "arm64" else "amd64")
    mine, _ = image_of(busybox.root, llb.scratch().file(llb.mkfile("/which", b"host")),
                       env=(), platform=host)
    theirs, _ = image_of(busybox.root, llb.scratch().file(llb.mkfile("/which", b"other")),
                         env=(), platform=other)
    name = f"{registry.host}/test/multi:1"
    push(busybox.root, index_of(busybox.root, [mine, theirs]), name)
    with Solver(tmp_path / "root") as solver:
        for platform, want in ((None, b"host"), (f"{other.os}/{other.architecture}", b"other")):
            ref = solver.solve(llb.image(name, platform=platform).to_definition()).ref
            with solver.store.view(ref) as v:
                assert Path(v, "which").read_bytes() == want


def test_an_oci_layout_by_name_and_by_path(llb_root: LLB, tmp_path: Path,
                                           busybox: Pushed) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(busybox.root, _manifest_of(busybox), layout, "v1")
    build = _build(tmp_path, "    a = llb.oci_layout('lay', tag='v1')\n"
                   f"    b = llb.oci_layout({str(layout)!r}, digest={busybox.digest!r})\n"
                   "    run = a.run(['sh', '-c', 'echo $GREETING > g']).root()\n"
                   "    return llb.merge([b, run])\n")
    out = tmp_path / "out"
    r = llb_root.solve(build, "--oci-layout", f"lay={layout}", "--output",
                       f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert (out / "work/g").read_text() == GREETING + "\n"
    missing = llb_root.solve(build)
    assert missing.code == 2
    assert "no --oci-layout mapping for layout 'lay'" in missing.stderr


def test_a_forged_diff_id_is_one_error_line(llb_root: LLB, tmp_path: Path, busybox: Pushed,
                                            registry: Registry) -> None:
    state = llb.scratch().file(llb.mkfile("/f", b"x"))
    desc, _ = image_of(busybox.root, state, env=(), diff_ids=["sha256:" + "1" * 64])
    name = f"{registry.host}/test/forged:1"
    push(busybox.root, desc, name)
    build = _build(tmp_path, f"    return llb.image({name!r})\n")
    r = llb_root.solve(build, "--output", f"type=local,dest={tmp_path / 'out'}",
                       progress="plain")
    assert r.code == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "rootfs.diff_ids says sha256:" + "1" * 64 in last
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pull_from_a_registry_with_basic_auth(llb_root: LLB, tmp_path: Path, busybox: Pushed,
                                              basic_registry: Registry,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = docker_config(tmp_path / "docker", {basic_registry.host: {
        "auth": __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode()}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))
    from llb.content.registry import RegistryClient

    content = ContentStore(busybox.root)
    try:
        with RegistryClient(content) as client:
            client.push_image(f"{basic_registry.host}/test/busybox:1", _manifest_of(busybox))
    finally:
        content.close()
    build = _build(tmp_path, f"    return llb.image({basic_registry.host + '/test/busybox:1'!r})"
                   ".run(['sh', '-c', 'echo ok > /work/ok']).root()\n")
    out = tmp_path / "out"
    r = llb_root.solve(build, "--output", f"type=local,dest={out}")
    assert r.code == 0, r.stderr
    assert (out / "work/ok").read_text() == "ok\n"
    json.dumps(r.events)  # the events are plain JSON
    shutil.rmtree(out)
