"""The smallest build: a directory and a file on an empty root.

    llb dump examples/hello/build.py
    llb solve examples/hello/build.py --output type=local,dest=out/hello
"""

import llb


def build() -> llb.State:
    return llb.scratch().file(
        llb.mkdir("/hello", mode=0o755)
        .mkfile("/hello/world.txt", b"hello, world\n", mode=0o644),
        name="write hello/world.txt",
    )
