"""The shape MergeOp exists for: a base, a dependency tree and an app tree built
independently, then merged. Changing the app never invalidates the dependencies.

    llb dump examples/merge/build.py --format dot | dot -Tsvg > merge.svg
    llb solve examples/merge/build.py --output type=local,dest=out/merge
    llb dump examples/merge/build.py --target deps     # one part on its own
"""

import llb
from base import base  # a helper beside this file

GREET = '''def greet(name):
    return f"hello, {name}"
'''

MAIN = '''import sys
sys.path.insert(0, "/opt/deps/lib")
from greet import greet
print(greet("merge"))
'''


def deps() -> llb.State:
    """Only what installing the dependencies added on top of the base (a diff)."""
    root = base()
    installed = root.file(
        llb.mkdir("/opt/deps/lib", 0o755, parents=True)
        .mkfile("/opt/deps/lib/greet.py", GREET)
        .mkfile("/opt/deps/VERSION", "greet 1.0\n"),
        name="install dependencies",
    )
    return llb.diff(root, installed, name="dependency layer")


def app() -> llb.State:
    """Only the application's files, built independently of the dependencies."""
    root = base().cwd("/app")
    built = root.file(
        llb.mkdir("/app", 0o755)
        .mkfile("main.py", MAIN, 0o755)  # relative to the state's cwd: /app/main.py
        .mkfile("VERSION", "app 0.1\n"),
        name="build app",
    )
    return llb.diff(root, built, name="app layer")


def build() -> llb.State:
    return llb.merge([base(), deps(), app()], name="base + deps + app")
