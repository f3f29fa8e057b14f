"""A busybox root built from scratch, no registry needed: Debian's busybox-static binary
(`apt-get install busybox-static`) brought in as a local source, then one exec of
`busybox --install -s /bin` inside it creates the applet links.

    llb solve examples/busybox/build.py --local busybox=/bin --output type=local,dest=out/bb

Other build files use it as their base:

    import importlib.util, pathlib
    spec = importlib.util.spec_from_file_location(
        "busybox_base", pathlib.Path(__file__).resolve().parent.parent / "busybox" / "build.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    base = mod.busybox()

`llb.local(BUSYBOX_LOCAL, include=["busybox"])` reads only the one file from the directory
given as `--local busybox=DIR` (Debian installs the binary as /bin/busybox).
"""

import llb

BUSYBOX_LOCAL = "busybox"

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox() -> llb.State:
    """/bin/busybox with every applet linked in /bin (sh, ls, mkdir, ...), a minimal /etc
    (passwd, group), /root, /tmp; PATH set for later runs."""
    binary = llb.local(BUSYBOX_LOCAL, include=["busybox"])
    files = llb.scratch().file(
        llb.mkdir("/bin", 0o755)
        .copy(binary, "/busybox", "/bin/busybox")
        .mkdir("/etc", 0o755)
        .mkfile("/etc/passwd", PASSWD, 0o644)
        .mkfile("/etc/group", GROUP, 0o644)
        .mkdir("/root", 0o700)
        .mkdir("/tmp", 0o1777),
        name="busybox files",
    )
    root = files.run(["/bin/busybox", "--install", "-s", "/bin"],
                     name="busybox --install -s /bin").root()
    return root.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def build() -> llb.State:
    return busybox()
