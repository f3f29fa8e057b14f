"""The base roots of the merge example.

`base()` is a small root made with file ops only, so `make example` needs nothing but llb.
`busybox_base()` is the busybox root of examples/busybox/build.py (a real userland; solve
with `--local busybox=/bin`): build.py's `on_busybox` target merges onto it instead.
"""

import importlib.util
from pathlib import Path

import llb

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def base() -> llb.State:
    return llb.scratch().file(
        llb.mkdir("/etc", 0o755)
        .mkfile("/etc/passwd", PASSWD, 0o644)
        .mkfile("/etc/group", GROUP, 0o644)
        .mkdir("/usr/bin", 0o755, parents=True)
        .mkdir("/root", 0o700)
        .mkdir("/tmp", 0o1777),
        name="base root",
    )


def busybox_base() -> llb.State:
    path = Path(__file__).resolve().parent.parent / "busybox" / "build.py"
    spec = importlib.util.spec_from_file_location("_busybox_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.busybox().with_name("base root")
