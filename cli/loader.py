"""Turning the BUILD argument of a command into a Definition.

BUILD is a Python build file (its `build()`, or `--target NAME`, returns an llb.State), a
directory holding build.py, a serialised definition file, or "-" for one on stdin. A
definition is llb's own (msgpack) or BuildKit's (protobuf, from any BuildKit client): told
apart by content, and BuildKit's format (llb.pb, protobuf) is imported only for BuildKit's.
"""

from __future__ import annotations

import gc
import os
import sys

from llb.errors import BuildFileError, DefinitionError, LLBError
from llb.paths import lexical

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:  # the DSL is imported only when a build file runs, not for a definition
    from llb.definition import Definition
    from llb.resolver import Resolver


def load_definition(build: str, target: str | None = None, *,
                    resolver: Resolver | None = None) -> Definition:
    """The Definition BUILD stands for; BuildFileError / DefinitionError say what is wrong.
    resolver: resolves llb.image()/llb.oci_layout() while a build file runs (llb.resolver);
    a serialised definition is taken as it is."""
    if build == "-":
        if target:
            raise BuildFileError("--target applies to build files, not a definition on stdin")
        data = sys.stdin.buffer.read()
        return _parse(data, "<stdin>")
    path = lexical(build)
    if os.path.isdir(path):
        path = os.path.join(path, "build.py")
    if not os.path.isfile(path):
        raise BuildFileError(f"{build}: no such build file or definition", path=build)
    if os.path.splitext(path)[1] == ".py":
        return load_build_file(path, target, resolver=resolver)
    if target:
        raise BuildFileError(f"{build}: --target applies to build files, not a definition",
                             path=build)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BuildFileError(f"{build}: cannot read: {e.strerror}", path=build) from None
    return _parse(data, str(build))


def is_buildkit(data: bytes) -> bool:
    """True for BuildKit Definition bytes: they open with the tag of the Definition's field 1,
    2 or 3 (0x0a, 0x12, 0x1a), where llb's msgpack opens with a map (0x80-0x8f, 0xde, 0xdf)."""
    return data[:1] in (b"\x0a", b"\x12", b"\x1a")


def _parse(data: bytes, where: str) -> Definition:
    try:
        if is_buildkit(data):
            from llb.pb import from_buildkit

            return from_buildkit(data)
        from llb.definition import Definition

        return Definition.from_bytes(data)
    except DefinitionError as e:
        raise type(e)(f"{where}: {e}", vertex=e.vertex, path=where) from None


def load_build_file(path: str | os.PathLike[str], target: str | None = None, *,
                    resolver: Resolver | None = None) -> Definition:
    """Run a build file's `build()` (or `target`) and return the definition of its State,
    with `resolver` in effect for the images it names."""
    import importlib.util

    from llb.resolver import using
    from llb.state import State

    name = target or "build"
    shown = lexical(os.fspath(path))
    directory = os.path.dirname(os.path.realpath(shown))
    sys.path.insert(0, directory)  # so a build file can import helpers beside it
    modules_before = set(sys.modules)
    try:
        spec = importlib.util.spec_from_file_location(f"_llb_build_{abs(hash(shown))}", shown)
        if spec is None or spec.loader is None:
            raise BuildFileError(f"{shown}: cannot load as a Python module", path=shown)
        module = importlib.util.module_from_spec(spec)
        try:
            with using(resolver):
                spec.loader.exec_module(module)
        except SyntaxError as e:
            raise BuildFileError(f"{shown}:{e.lineno}: syntax error: {e.msg}", path=shown) from None
        except (Exception, SystemExit) as e:
            raise _failed(f"{_where(shown, e)}: loading failed: {_describe(e)}", shown,
                          e) from None
        fn = getattr(module, name, None)
        if fn is None:
            raise BuildFileError(f"{shown}: defines no function {name}() returning an llb.State",
                                 path=shown)
        if not callable(fn):
            raise BuildFileError(f"{shown}: {name} is a {type(fn).__name__}, not a function",
                                 path=shown)
        # the cyclic GC is paused while the build runs: a build makes many small objects and
        # keeps them (its graph), which the collector would traverse again and again (a
        # 100,000-action build spent 40% of its time there)
        paused = gc.isenabled()
        gc.disable()
        try:
            try:
                with using(resolver):
                    state = fn()
            except (Exception, SystemExit) as e:
                raise _failed(f"{_where(shown, e)}: {name}() failed: {_describe(e)}", shown,
                              e) from None
            if not isinstance(state, State):
                raise BuildFileError(f"{shown}: {name}() returned {type(state).__name__}, "
                                     f"not an llb.State", path=shown)
            try:
                return state.to_definition()
            except LLBError as e:
                raise BuildFileError(f"{shown}: {name}(): {e}", path=shown) from None
        finally:
            if paused:
                # what the build made (its graph, which the definition keeps) goes to the
                # oldest generation unscanned, where two collections would have moved it:
                # enabled with it all young, the GC's next collection walked all of it
                gc.freeze()
                gc.unfreeze()
                gc.enable()
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass
        _forget_modules_from(directory, set(sys.modules) - modules_before)


def _forget_modules_from(directory: str, names: set[str]) -> None:
    """Drop helper modules the build file imported from its own directory, so another build
    file with a helper of the same name gets its own."""
    for name in names:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) or ""
        if origin and os.path.realpath(origin).startswith(directory + "/"):
            del sys.modules[name]


def _failed(message: str, shown: str, e: BaseException) -> BuildFileError:
    """A BuildFileError for a build file that raised e; an llb error keeps its exit code
    (a registry that cannot be reached while resolving an image is not bad input)."""
    err = BuildFileError(message, path=shown)
    if isinstance(e, LLBError):
        err.exit_code = e.exit_code
    return err


def _describe(e: BaseException) -> str:
    if isinstance(e, LLBError):
        return str(e)
    text = str(e).split("\n")[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _where(shown: str, e: BaseException) -> str:
    """`file:line` of the deepest traceback frame inside the build file, else the file."""
    import traceback

    target = os.path.realpath(shown)
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if os.path.realpath(frame.filename) == target:
            line = frame.lineno
    return f"{shown}:{line}" if line else shown
