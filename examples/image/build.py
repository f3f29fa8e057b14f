"""An image built offline: the busybox root of examples/busybox (Debian's busybox-static
binary, no registry needed), an app built on it, and the two merged, so the image's layers
are the root's layers followed by the app's. Entrypoint, Cmd, labels, exposed ports, Env,
WorkingDir and User go into the image config; history entries are named after the vertices.

    llb solve examples/image/build.py --local busybox=/bin \
        --output type=oci,dest=out/image.tar,name=llb/hello:1     # an OCI layout tar
    llb solve examples/image/build.py --local busybox=/bin \
        --output type=docker,dest=out/docker.tar,name=llb/hello:1 # for docker/podman load

Inspect it with tools that are not llb (`apt-get install skopeo umoci`):

    skopeo inspect oci-archive:out/image.tar:1
    skopeo inspect --config oci-archive:out/image.tar:1
    mkdir -p out/layout && tar -xf out/image.tar -C out/layout
    umoci unpack --image out/layout:1 out/bundle && ls out/bundle/rootfs/app
    skopeo inspect docker-archive:out/docker.tar

Push it to a registry on this machine (`apt-get install docker-registry`, which Debian
starts on 127.0.0.1:5000; loopback registries are spoken to over plain HTTP):

    llb solve examples/image/build.py --local busybox=/bin \
        --output type=image,name=127.0.0.1:5000/llb/hello:1,push=true
    skopeo inspect --tls-verify=false docker://127.0.0.1:5000/llb/hello:1

Change app() and push again: only the app's layer and the config are uploaded.
"""

import importlib.util
from pathlib import Path

import llb

HELLO = """#!/bin/sh
echo "hello from $(cat /app/VERSION) on $(uname -s)"
"""


def busybox() -> llb.State:
    """The busybox root of examples/busybox/build.py."""
    path = Path(__file__).resolve().parent.parent / "busybox" / "build.py"
    spec = importlib.util.spec_from_file_location("_busybox_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.busybox()


def app(root: llb.State) -> llb.State:
    """Only the app's files: a layer of its own, whatever the root becomes."""
    built = root.file(
        llb.mkdir("/app", 0o755)
        .mkfile("/app/hello.sh", HELLO, 0o755)
        .mkfile("/app/VERSION", "hello 1.0\n", 0o644),
        name="app files",
    )
    return llb.diff(root, built, name="app layer")


def build() -> llb.State:
    root = busybox()
    image = llb.merge([root, app(root)], name="busybox + app")
    return (image.env("PATH", "/bin").cwd("/app").user("nobody")
            .entrypoint(["/bin/sh", "/app/hello.sh"]).cmd([])
            .label("org.opencontainers.image.title", "hello")
            .label("org.opencontainers.image.version", "1.0")
            .expose(8080))
