"""The same programs twice: with llb's DSL, and as an llbjson graph for BuildKit's Go client
(../shared/buildkit/README.md has the JSON format). Every op kind and every option llbjson
can express is here; options it cannot express are tested against BuildKit's proto
semantics in test_encode_options.py."""

from __future__ import annotations

import base64
from collections.abc import Callable

import llb

Case = tuple[str, Callable[[], llb.State], dict]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _mkfile(path: str, data: bytes, mode: int | None = None) -> dict:
    a = {"a": "mkfile", "path": path, "data": _b64(data)}
    if mode is not None:
        a["mode"] = mode
    return a


def _file(base, *actions, **extra) -> dict:
    return {"op": "file", "base": base, "actions": list(actions), **extra}


def _busybox_exec(**kw) -> dict:
    return {"op": "exec", "base": 0, "args": ["sh", "-c", "echo hi > /out/x"], **kw}


def _hello() -> llb.State:
    return llb.scratch().file(llb.mkdir("/hello", 0o755).mkfile("/hello/world.txt", b"hi\n", 0o644))


CASES: list[Case] = [
    ("mkfile on scratch",
     lambda: llb.scratch().file(llb.mkfile("/a", b"hi", 0o644)),
     {"root": 0, "nodes": [_file(None, _mkfile("/a", b"hi", 0o644))]}),
    ("mkfile default mode, empty data",
     lambda: llb.scratch().file(llb.mkfile("/empty")),
     {"root": 0, "nodes": [_file(None, _mkfile("/empty", b""))]}),
    ("mkdir modes and parents",
     lambda: llb.scratch().file(llb.mkdir("/d").mkdir("/p/q/r", 0o700, parents=True)),
     {"root": 0, "nodes": [_file(None, {"a": "mkdir", "path": "/d"},
                                 {"a": "mkdir", "path": "/p/q/r", "mode": 0o700,
                                  "parents": True})]}),
    ("rm with and without allow_not_found",
     lambda: _hello().file(llb.rm("/hello/world.txt").rm("/nothing", allow_not_found=True)),
     {"root": 1, "nodes": [
         _file(None, {"a": "mkdir", "path": "/hello"}, _mkfile("/hello/world.txt", b"hi\n")),
         _file(0, {"a": "rm", "path": "/hello/world.txt"},
               {"a": "rm", "path": "/nothing", "allowNotFound": True})]}),
    ("copy from a local, create_dest_path on and off",
     lambda: llb.scratch().file(
         llb.copy(llb.local("ctx"), "/src", "/app/src", create_dest_path=True)
         .copy(llb.local("ctx"), "/README", "/README")),
     {"root": 1, "nodes": [
         {"op": "local", "name": "ctx"},
         _file(None, {"a": "copy", "src": 0, "srcPath": "/src", "destPath": "/app/src"},
               {"a": "copy", "src": 0, "srcPath": "/README", "destPath": "/README",
                "createDestPath": False})]}),
    ("copy into a directory (trailing slash), from scratch, from the base itself",
     lambda: (lambda h: h.file(llb.copy(h, "/hello", "/again/", create_dest_path=True)
                               .copy(llb.scratch(), "/nothing", "/n", create_dest_path=True)
                               .copy(_hello(), "/hello/world.txt", "/w.txt",
                                     create_dest_path=True)))(_hello()),
     {"root": 1, "nodes": [
         _file(None, {"a": "mkdir", "path": "/hello"}, _mkfile("/hello/world.txt", b"hi\n")),
         _file(0, {"a": "copy", "src": 0, "srcPath": "/hello", "destPath": "/again/"},
               {"a": "copy", "src": None, "srcPath": "/nothing", "destPath": "/n"},
               {"a": "copy", "src": 0, "srcPath": "/hello/world.txt", "destPath": "/w.txt"})]}),
    ("long chain with several copy sources",
     lambda: llb.scratch().file(
         llb.mkdir("/a").copy(llb.local("one"), "/x", "/a/x", create_dest_path=True)
         .mkfile("/a/f", b"f").copy(llb.local("two"), "/y", "/a/y", create_dest_path=True)
         .copy(llb.local("one"), "/z", "/a/z", create_dest_path=True).rm("/a/f")),
     {"root": 2, "nodes": [
         {"op": "local", "name": "one"}, {"op": "local", "name": "two"},
         _file(None, {"a": "mkdir", "path": "/a"},
               {"a": "copy", "src": 0, "srcPath": "/x", "destPath": "/a/x"},
               _mkfile("/a/f", b"f"),
               {"a": "copy", "src": 1, "srcPath": "/y", "destPath": "/a/y"},
               {"a": "copy", "src": 0, "srcPath": "/z", "destPath": "/a/z"},
               {"a": "rm", "path": "/a/f"})]}),
    ("exec on an image: args, env, cwd, user",
     lambda: llb.image("busybox").env("A", "1").env("B", "two words").cwd("/work").user("nobody")
     .run(["sh", "-c", "echo $A > out"]).root(),
     {"root": 2, "nodes": [
         {"op": "image", "ref": "busybox"},
         {"op": "exec", "base": 0, "args": ["sh", "-c", "echo $A > out"],
          "env": [["A", "1"], ["B", "two words"]], "cwd": "/work", "user": "nobody"},
         {"op": "out", "exec": 1, "out": "/"}]}),
    ("exec with an explicit PATH (kept) and env replaced (moved last, as Go's AddEnv)",
     lambda: llb.image("busybox").env("PATH", "/bin").env("X", "1").env("PATH", "/sbin:/bin")
     .run("true").root(),
     {"root": 2, "nodes": [
         {"op": "image", "ref": "busybox"},
         {"op": "exec", "base": 0, "args": ["true"],
          "env": [["PATH", "/bin"], ["X", "1"], ["PATH", "/sbin:/bin"]]},
         {"op": "out", "exec": 1, "out": "/"}]}),
    ("exec mounts: rw/ro binds, scratch, caches (each sharing), tmpfs; a mount's output",
     lambda: llb.image("busybox").run(
         ["sh", "-c", "cp -a /src /out"],
         mounts=[llb.mount("/src", llb.local("ctx"), readonly=True),
                 llb.mount("/out", llb.scratch()),
                 llb.mount("/rw", llb.local("ctx")),
                 llb.cache_mount("/c1", "one"),
                 llb.cache_mount("/c2", "two", sharing="private"),
                 llb.cache_mount("/c3", "three", sharing="locked"),
                 llb.tmpfs("/tmp")]).get_mount("/out"),
     {"root": 3, "nodes": [
         {"op": "image", "ref": "busybox"}, {"op": "local", "name": "ctx"},
         {"op": "exec", "base": 0, "args": ["sh", "-c", "cp -a /src /out"],
          "mounts": [{"dest": "/src", "input": 1, "readonly": True},
                     {"dest": "/out", "input": None},
                     {"dest": "/rw", "input": 1},
                     {"dest": "/c1", "type": "cache", "cacheId": "one", "sharing": "shared"},
                     {"dest": "/c2", "type": "cache", "cacheId": "two", "sharing": "private"},
                     {"dest": "/c3", "type": "cache", "cacheId": "three",
                      "sharing": "locked"},
                     {"dest": "/tmp", "type": "tmpfs"}]},
         {"op": "out", "exec": 2, "out": "/out"}]}),
    ("exec on scratch, chained execs, the root of the second",
     lambda: llb.scratch().run(["/bin/sh", "-c", "one"]).root().run(["/bin/sh", "-c", "two"])
     .root(),
     {"root": 3, "nodes": [
         {"op": "exec", "base": None, "args": ["/bin/sh", "-c", "one"]},
         {"op": "out", "exec": 0, "out": "/"},
         {"op": "exec", "base": 1, "args": ["/bin/sh", "-c", "two"]},
         {"op": "out", "exec": 2, "out": "/"}]}),
    ("relative paths resolve against the state's cwd (file actions and copy sources)",
     lambda: (lambda r: r.file(llb.mkfile("rel.txt", b"r").copy(r, "f", "sub/", create_dest_path=True)))(
         llb.image("busybox").cwd("/w").run("touch f").root()),
     {"root": 3, "nodes": [
         {"op": "image", "ref": "busybox"},
         {"op": "exec", "base": 0, "args": ["touch", "f"], "cwd": "/w"},
         {"op": "out", "exec": 1, "out": "/"},
         _file(2, _mkfile("rel.txt", b"r"),
               {"a": "copy", "src": 2, "srcPath": "f", "destPath": "sub/"})]}),
    ("merge drops scratch; nested merges; one op used twice",
     lambda: (lambda a, b: llb.merge([llb.merge([a, llb.scratch(), b]), a]))(
         _hello(), llb.scratch().file(llb.mkfile("/b", b"b"))),
     {"root": 3, "nodes": [
         _file(None, {"a": "mkdir", "path": "/hello"}, _mkfile("/hello/world.txt", b"hi\n")),
         _file(None, _mkfile("/b", b"b")),
         {"op": "merge", "inputs": [0, None, 1]},
         {"op": "merge", "inputs": [2, 0]}]}),
    ("a merge of one input is that input",
     lambda: llb.merge([llb.scratch(), _hello()]),
     {"root": 1, "nodes": [
         _file(None, {"a": "mkdir", "path": "/hello"}, _mkfile("/hello/world.txt", b"hi\n")),
         {"op": "merge", "inputs": [None, 0]}]}),
    ("diff, diff against scratch upper, diff(scratch, x) is x",
     lambda: (lambda a, b: llb.merge([llb.diff(a, b), llb.diff(a, llb.scratch()),
                                      llb.diff(llb.scratch(), b)]))(
         _hello(), _hello().file(llb.rm("/hello/world.txt").mkfile("/new", b"n"))),
     {"root": 5, "nodes": [
         _file(None, {"a": "mkdir", "path": "/hello"}, _mkfile("/hello/world.txt", b"hi\n")),
         _file(0, {"a": "rm", "path": "/hello/world.txt"}, _mkfile("/new", b"n")),
         {"op": "diff", "lower": 0, "upper": 1},
         {"op": "diff", "lower": 0, "upper": None},
         {"op": "diff", "lower": None, "upper": 1},
         {"op": "merge", "inputs": [2, 3, 4]}]}),
    ("scratch alone is an empty definition",
     lambda: llb.merge([llb.scratch(), llb.scratch()]),
     {"root": None, "nodes": []}),
    ("progress names are llb.customname (file, exec, merge, diff, image, local)",
     lambda: (lambda img, ctx: llb.merge([
         llb.diff(img, img.run("true", name="run it").root(), name="the diff"),
         img.file(llb.copy(ctx, "/a", "/a", create_dest_path=True), name="copy a")],
         name="all of it"))(llb.image("busybox", name="base image"),
                            llb.local("ctx").with_name("context")),
     {"root": 6, "nodes": [
         {"op": "image", "ref": "busybox", "name": "base image"},
         {"op": "exec", "base": 0, "args": ["true"], "name": "run it"},
         {"op": "out", "exec": 1, "out": "/"},
         {"op": "diff", "lower": 0, "upper": 2, "name": "the diff"},
         {"op": "local", "name": "ctx", "customName": "context"},
         _file(0, {"a": "copy", "src": 4, "srcPath": "/a", "destPath": "/a"}, name="copy a"),
         {"op": "merge", "inputs": [3, 5], "name": "all of it"}]}),
]
