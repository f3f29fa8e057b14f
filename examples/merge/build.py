"""The shape MergeOp exists for: a base, a dependency tree and an app tree built
independently, then merged. Changing the app never invalidates the dependencies, and the
merge links files instead of copying them.

    llb dump examples/merge/build.py --format dot | dot -Tsvg > merge.svg
    llb solve examples/merge/build.py --output type=local,dest=out/merge
    llb dump examples/merge/build.py --target deps          # one part on its own
    llb solve examples/merge/build.py --target on_busybox --local busybox=/bin \
        --output type=local,dest=out/merge-bb               # the same on a busybox root
    llb solve examples/merge/build.py --target run --local busybox=/bin ...  # plus an exec
"""

import llb
from base import base, busybox_base  # helpers beside this file

GREET = '''def greet(name):
    return f"hello, {name}"
'''

MAIN = '''import sys
sys.path.insert(0, "/opt/deps/lib")
from greet import greet
print(greet("merge"))
'''


def deps(root: llb.State | None = None) -> llb.State:
    """Only what installing the dependencies added on top of the root (a diff)."""
    root = base() if root is None else root
    installed = root.file(
        llb.mkdir("/opt/deps/lib", 0o755, parents=True)
        .mkfile("/opt/deps/lib/greet.py", GREET)
        .mkfile("/opt/deps/VERSION", "greet 1.0\n"),
        name="install dependencies",
    )
    return llb.diff(root, installed, name="dependency layer")


def app(root: llb.State | None = None) -> llb.State:
    """Only the application's files, built independently of the dependencies."""
    root = (base() if root is None else root).cwd("/app")
    built = root.file(
        llb.mkdir("/app", 0o755)
        .mkfile("main.py", MAIN, 0o755)  # relative to the state's cwd: /app/main.py
        .mkfile("VERSION", "app 0.1\n"),
        name="build app",
    )
    return llb.diff(root, built, name="app layer")


def assemble(root: llb.State) -> llb.State:
    return llb.merge([root, deps(root), app(root)], name="base + deps + app")


def build() -> llb.State:
    return assemble(base())


def on_busybox() -> llb.State:
    return assemble(busybox_base())


def run() -> llb.State:
    """`--target run` (what `make example` solves): on_busybox, then a real command run
    under runc on the merged root records what the merge put together."""
    return on_busybox().run(
        ["sh", "-c", "cd / && find app opt -type f ! -name MANIFEST | sort > /app/MANIFEST"
                     " && cat opt/deps/VERSION app/VERSION >> /app/MANIFEST"],
        name="record the merged tree",
    ).root()
