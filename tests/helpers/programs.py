"""Small llb programs used by several tests (golden digests, round trips, the CLI)."""

import llb

DG = "sha256:" + "5e" * 32


def hello() -> llb.State:
    return llb.scratch().file(llb.mkdir("/hello").mkfile("/hello/world.txt", b"hello\n"))


def kitchen_sink() -> llb.State:
    """Every op kind and every option with a non-default value somewhere."""
    base = llb.image("busybox:1.36", name="busybox")
    layout = llb.oci_layout("/srv/layout", digest=DG)
    tagged = llb.oci_layout("/srv/layout", tag="v2")
    ctx = llb.local("context", include=["src/**", "*.toml"], exclude=["**/__pycache__"])
    prepared = base.env("LANG", "C.UTF-8").cwd("/work").user("1000:1000").hostname("builder")
    ex = prepared.run(["sh", "-c", "make && cp -r build /out"],
                      mounts=[llb.mount("/src", ctx, readonly=True, selector="/src"),
                              llb.mount("/out", llb.scratch()),
                              llb.cache_mount("/root/.cache", id="pip", sharing="private"),
                              llb.cache_mount("/var/cache", id="apt", sharing="locked"),
                              llb.tmpfs("/tmp", size=64 << 20)],
                      network="host", ignore_cache=True, name="make",
                      description="compile everything")
    ro = base.run("true", readonly_rootfs=True, mounts=[llb.mount("/o", llb.scratch())])
    files = llb.scratch().file(
        llb.mkdir("/a/b", 0o700, parents=True, owner="user:group", created=10**18)
        .mkfile("/a/b/c", b"\x00\xffbinary", 0o600, owner=5, created=1)
        .copy(ex.get_mount("/out"), "/build", "/app/", owner="0:0", mode=0o755,
              follow_symlinks=True, copy_dir_contents_only=True, create_dest_path=True,
              allow_wildcard=True, allow_empty_wildcard=True, include=["*.so"],
              exclude=["*.a"], created=2, always_replace_existing=True)
        .rm("/a/tmp*", allow_not_found=True, allow_wildcard=True),
        name="assemble")
    d = llb.diff(base, ex.root(), name="changes")
    return llb.merge([base, layout, tagged, files, d, ro.get_mount("/o")], description="all")


def chain(n: int) -> llb.State:
    s = llb.scratch()
    for i in range(n):
        s = s.file(llb.mkfile(f"/f{i}", str(i)))
    return s


def wide(n: int) -> llb.State:
    return llb.merge([llb.scratch().file(llb.mkfile(f"/f{i}", str(i))) for i in range(n)])


PROGRAMS = {"hello": hello, "kitchen_sink": kitchen_sink, "chain10": lambda: chain(10),
            "wide10": lambda: wide(10), "scratch": llb.scratch,
            "image": lambda: llb.image("busybox")}
