"""The base root of the merge example.

For now a small root made with file ops only, so the example needs nothing but llb. To build
on a real userland instead, return the busybox root of examples/busybox/build.py here (load
it with importlib from ../busybox/build.py and call its build()); nothing else changes.
"""

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
