"""Import budgets: what each kind of `llb` command may load. Modules are imported at the top
of the modules that use them, except at a few named boundaries (docs/internals.md, "The
rooms"); each boundary is held here by the commands that must not cross it, so a start-up
cost cannot creep back in unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llb
from llb.snapshot.db import shm_needs_blocks

# stdlib and third-party modules a fully cached solve never needs: they cost start-up time
# (OpenSSL, the compression modules shutil loads, logging through concurrent.futures, ...)
HEAVY = ("json", "shutil", "tarfile", "concurrent.futures", "logging", "ssl", "_hashlib",
         "subprocess", "tempfile", "networkx", "pathspec", "httpx", "google.protobuf", "rich",
         "bz2", "lzma", "uuid", "platform", "calendar",
         # dataclasses loads inspect, ast, dis and tokenize (~40M instructions): llb.values
         # makes a value class's dataclass fields only when fields() or replace() asks
         "dataclasses", "inspect", "ast")
# loaded by no cached solve: signal.py makes IntEnums of every signal at import (cli/signals
# uses _signal), shlex splits and shows exec command lines only, queue.py loads heapq (the
# scheduler's queues are _queue's), codecs other than utf-8 are modules of their own
LEAN = ("signal", "shlex", "queue", "encodings.unicode_escape", "encodings.ascii")
# pathlib loads fnmatch, re (and enum through it), urllib.parse and ipaddress (~27M
# instructions): the cached path holds paths as str (os.path); what needs a Path imports it
# where it runs
PATHLIB = ("pathlib", "fnmatch", "urllib.parse", "ipaddress")
# re loads enum: what checks a string against a pattern imports it where it runs; only
# typing (see TYPING: a serialised definition's decoders) still brings it along
REGEX = ("re", "enum")
# loaded by a cached solve of a build file only to decode a serialised definition: typing
# (its type hints drive llb.codec's decoders); annotations need none of it at run time
TYPING = ("typing",)
# click (with the inspect, gettext and datetime parsing it loads) reads a command line only
# when the executable's quick path (cli/quick.py) cannot: never for a plain cached solve
CLICK = ("click", "llb.cli.group", "llb.cli.solve")
# the package's own modules behind the boundaries
HANDLERS = tuple(f"llb.solver.ops.{k}" for k in ("source", "exec", "file", "merge", "diff"))
DSL = ("llb.state", "llb.sources", "llb.actions", "llb.mounts", "llb.merge", "llb.exec")


def _loaded(tmp_path: Path, argv: list[str]) -> set[str]:
    """The modules loaded by the time `llb ARGV` (run in-process by the executable's entry
    point, cli.main:run) ends."""
    code = ("import os, sys\nfrom llb.cli.main import run\n"
            f"sys.argv = ['llb', *{argv!r}]\n"
            "exit = os._exit\n"
            "def _exit(code):\n"
            "    loaded = sorted(sys.modules)\n"
            "    import json\n"
            "    sys.stdout.write('\\n' + json.dumps([code, loaded]))\n"
            "    sys.stdout.flush()\n"
            "    exit(0)\n"
            "os._exit = _exit\nrun()\n")
    env = {"LLB_ROOT": str(tmp_path / "root"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    status, modules = json.loads(out.stdout.rsplit("\n", 1)[-1])
    assert status == 0, out.stderr
    return set(modules)


def _crossed(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules)


@pytest.fixture
def definition(tmp_path: Path) -> Path:
    """A serialised definition with a merge of two file ops, solved once (so cached)."""
    state = llb.merge([llb.scratch().file(llb.mkfile("/a", "x")),
                       llb.scratch().file(llb.mkdir("/d"))])
    path = tmp_path / "g.llb"
    path.write_bytes(state.to_definition().to_bytes())
    out = subprocess.run([str(Path(sys.executable).parent / "llb"), "solve", str(path),
                          "--progress", "plain"], capture_output=True, text=True,
                         env={"LLB_ROOT": str(tmp_path / "root"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return path


def test_a_cached_solve_crosses_no_boundary(tmp_path: Path, definition: Path) -> None:
    modules = _loaded(tmp_path, ["solve", str(definition), "--progress", "plain"])
    assert "llb.solver.scheduler" in modules  # it did solve
    assert _crossed(modules, HEAVY + LEAN + PATHLIB) == []
    assert _crossed(modules, CLICK) == []
    assert _crossed(modules, HANDLERS + DSL) == []
    assert _crossed(modules, ("llb.executor", "llb.content", "llb.pb", "llb.remote",
                              "llb.solver.checksum", "llb.solver.sources.local",
                              "llb.solver.exporters.local", "llb.solver.exporters.tar")) == []
    # include/exclude patterns are read by the copies that have them (solver/solve.py checks
    # them where a copy filters): a solve of file ops without any loads no llb.solver.patterns
    assert _crossed(modules, ("llb.solver.patterns",)) == []


def test_a_cached_solve_on_overlayfs_loads_no_snapshot_writer(tmp_path: Path,
                                                               definition: Path) -> None:
    # a cached solve only reads committed snapshots: what writes one (diffs, tree maps,
    # upper dirs, merges, removals) is imported by the methods that write (snapshot/driver.py)
    modules = _loaded(tmp_path, ["solve", str(definition), "--progress", "plain"])
    if "llb.snapshot.overlay" not in modules:
        pytest.skip("the root is not an overlayfs one here")
    assert _crossed(modules, tuple(f"llb.snapshot.{m}" for m in (
        "differ", "treemap", "upper", "merge", "removal", "metadata"))) == []


def test_a_cached_solve_on_a_native_root_loads_no_snapshot_writer_nor_typing(
        tmp_path: Path) -> None:
    # the native driver imports what writes a snapshot (diffs, tree maps, upper dirs) in
    # the methods that write, and typing not at all (~16M instructions)
    (tmp_path / "build.py").write_text(
        "import llb\n\ndef build():\n    a = llb.scratch().file(llb.mkfile('/a', 'x'))\n"
        "    return llb.merge([a.file(llb.rm('/a')), llb.scratch().file(llb.mkdir('/d'))])\n")
    out = tmp_path / "out"
    argv = ["solve", str(tmp_path / "build.py"), "--progress", "plain", "--snapshotter",
            "native", "--output", f"type=local,dest={out}"]
    cold = _loaded(tmp_path, argv)
    assert "llb.snapshot.native" in cold and "llb.snapshot.differ" in cold  # it wrote
    cached = _loaded(tmp_path, argv)
    assert sorted(os.listdir(out)) == ["d"]
    assert "llb.snapshot.native" in cached and "llb.solver.exporters.local" in cached
    assert _crossed(cached, tuple(f"llb.snapshot.{m}" for m in (
        "differ", "treemap", "upper", "merge", "removal", "metadata"))) == []
    assert _crossed(cached, TYPING + HEAVY + PATHLIB + REGEX) == []


def test_a_cached_solve_loads_no_ctypes(tmp_path: Path, definition: Path) -> None:
    # ctypes (snapshot/libc.py, ~9M instructions) is for mounts, unmounts and the WAL
    # index's fallocate, which a filesystem with page-sized blocks on a device never needs
    if shm_needs_blocks(tmp_path):
        pytest.skip("this filesystem needs the WAL index's blocks allocated (ctypes)")
    modules = _loaded(tmp_path, ["solve", str(definition), "--progress", "plain"])
    assert "llb.snapshot.db" in modules  # it opened the store
    assert _crossed(modules, ("ctypes", "_ctypes", "llb.snapshot.libc")) == []


def test_a_cached_solve_with_a_local_export_loads_only_that_exporter(
        tmp_path: Path, definition: Path) -> None:
    out = tmp_path / "out"
    modules = _loaded(tmp_path, ["solve", str(definition), "--progress", "plain",
                                 "--output", f"type=local,dest={out}"])
    assert (out / "a").read_text() == "x"
    assert "llb.solver.exporters.local" in modules
    assert _crossed(modules, ("llb.solver.exporters.tar", "tarfile", "json", "shutil")) == []
    assert _crossed(modules, HEAVY + CLICK + PATHLIB) == []


def test_a_cached_solve_of_a_build_file_loads_the_dsl_and_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "build.py").write_text(
        "import llb\n\ndef build():\n    return llb.scratch().file(llb.mkfile('/a', 'x'))\n")
    argv = ["solve", str(tmp_path / "build.py"), "--progress", "plain"]
    _loaded(tmp_path, argv)  # cold
    modules = _loaded(tmp_path, argv)
    assert "llb.state" in modules and "llb.solver.scheduler" in modules
    assert _crossed(modules, HEAVY + CLICK + LEAN + TYPING + PATHLIB + REGEX) == []
    assert _crossed(modules, HANDLERS) == []
    # State.run imports what builds an exec (llb.exec, and llb.mounts through it): a build
    # file that runs nothing loads neither
    assert _crossed(modules, ("llb.exec", "llb.mounts")) == []
    # nor what only images need: reference normalisation (llb.sources.image imports it) and
    # the byte sizes of transfers (the progress views import them for a pull's events)
    assert _crossed(modules, ("llb.refs", "llb.cli.sizes")) == []


def test_a_cold_solve_of_file_ops_and_a_merge_loads_no_thread_pool(tmp_path: Path) -> None:
    # the scheduler runs ops on plain threads: concurrent.futures would load logging (and
    # traceback, string, textwrap) into every cold solve
    (tmp_path / "build.py").write_text(
        "import llb\n\ndef build():\n    a = llb.scratch().file(llb.mkfile('/a', 'x'))\n"
        "    return llb.merge([a.file(llb.rm('/a')), llb.scratch().file(llb.mkdir('/d'))])\n")
    out = tmp_path / "out"
    modules = _loaded(tmp_path, ["solve", str(tmp_path / "build.py"), "--progress", "plain",
                                 "--output", f"type=local,dest={out}"])
    assert os.listdir(out) == ["d"]
    assert "llb.solver.ops.file" in modules and "llb.solver.ops.merge" in modules  # it ran
    assert _crossed(modules, ("concurrent.futures", "logging")) == []
    # nor dataclasses (inspect, ast, dis, tokenize: ~40M instructions): a FileOp's handler
    # loads the copy action's module, whose classes are plain ones; nor typing (~13M):
    # the merge handler's annotations need none of it at run time
    assert "llb.solver.ops.file_copy" in modules
    assert _crossed(modules, ("dataclasses", "inspect", "ast") + TYPING) == []


def test_version_loads_no_command(tmp_path: Path) -> None:
    modules = _loaded(tmp_path, ["--version"])
    assert _crossed(modules, ("llb.solver", "llb.snapshot", "llb.cli.solve", "llb.cli.dump",
                              "llb.cli.cache")) == []


def test_dumping_a_build_file_loads_no_engine(tmp_path: Path) -> None:
    (tmp_path / "build.py").write_text(
        "import llb\n\ndef build():\n    return llb.scratch().file(llb.mkfile('/a', 'x'))\n")
    modules = _loaded(tmp_path, ["dump", str(tmp_path / "build.py")])
    assert "llb.state" in modules
    assert _crossed(modules, ("llb.solver.scheduler", "llb.snapshot.store", "llb.executor",
                              "llb.content") + HANDLERS) == []


def _solve_with(definition: Path, tmp_path: Path, setup: str, at_exit: str) -> str:
    """Run `llb solve DEFINITION` in a fresh interpreter: `setup` runs after llb.cli.main is
    imported, `at_exit` (indented code that may print) just before the process exits."""
    code = ("import gc, os, sys\nfrom llb.cli.main import run\n"
            f"sys.argv = ['llb', 'solve', {str(definition)!r}, '--progress', 'plain']\n"
            f"{setup}exit = os._exit\n"
            f"def _exit(code):\n{at_exit}    exit(code)\n"
            "os._exit = _exit\nrun()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"LLB_ROOT": str(tmp_path / "root"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_cached_solve_compiles_no_dataclass(tmp_path: Path, definition: Path) -> None:
    # @dataclass compiles up to six functions per class (~1 ms of every command each class):
    # the ops and DSL values are llb.values classes instead, and none remains on the path
    stdout = _solve_with(definition, tmp_path, "", (
        "    found = sorted(f'{m.__name__}.{c.__name__}' for m in list(sys.modules.values())\n"
        "                   if m is not None and m.__name__.startswith('llb')\n"
        "                   for c in list(vars(m).values()) if isinstance(c, type)\n"
        "                   and c.__module__ == m.__name__\n"
        "                   and isinstance(vars(c).get('__dataclass_fields__'), dict)\n"
        "                   and '__init__' in vars(c))\n"
        "    sys.stdout.write('\\n' + ' '.join(found))\n"
        "    sys.stdout.flush()\n"))
    compiled = stdout.rsplit("\n", 1)[-1].split()
    assert compiled == []


def test_a_cached_solve_pauses_the_gc_for_its_imports_only(tmp_path: Path,
                                                           definition: Path) -> None:
    # the executable pauses the cyclic GC while it imports (cli/main.run) and turns it back
    # on, the start-up objects frozen, when the solve starts (cli/solving.resume_gc)
    stdout = _solve_with(definition, tmp_path, (
        "import llb.solver.solve as solve\n"
        "real = solve.Solver.solve\n"
        "def spy(self, *a, **k):\n"
        "    print('solving', gc.isenabled(), gc.get_freeze_count() > 1000, flush=True)\n"
        "    return real(self, *a, **k)\n"
        "solve.Solver.solve = spy\n"), "    print('end', gc.isenabled(), flush=True)\n")
    assert stdout.split("\n")[-3:] == ["solving True True", "end True", ""]


def test_a_cached_solve_compiles_no_source_of_its_own(tmp_path: Path, definition: Path) -> None:
    # collections.namedtuple compiles each class's __new__ from source (~0.25M instructions
    # a class): llb.records builds its named tuples from precompiled ones instead
    stdout = _solve_with(definition, tmp_path, (
        "import builtins\n"
        "evals = []\n"
        "real_eval = builtins.eval\n"
        "def spy(*a, **k):\n"
        "    f = sys._getframe(1)\n"
        "    evals.append(f'{f.f_globals.get(\"__name__\")}<{f.f_back.f_globals.get(\"__name__\")}')\n"
        "    return real_eval(*a, **k)\n"
        "builtins.eval = spy\n"),
        "    sys.stdout.write('\\n' + ' '.join(evals))\n    sys.stdout.flush()\n")
    evals = stdout.rsplit("\n", 1)[-1].split()
    assert "collections<functools" in evals  # the spy saw the standard library's
    assert [e for e in evals if "llb" in e] == []


def test_a_cached_solve_tries_no_import_of_its_own_that_fails(tmp_path: Path,
                                                              definition: Path) -> None:
    # a failed import searches every entry of sys.path (~0.4M instructions each): llb.codec
    # names CPython's own SHA-256 module by the version (_sha2 from 3.12, _sha256 before)
    # instead of trying one then the other
    stdout = _solve_with(definition, tmp_path, (
        "missed = []\n"
        "class _Last:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        f = sys._getframe(1)\n"
        "        while f is not None and f.f_globals.get('__name__', '').startswith(\n"
        "                ('importlib', '_frozen_importlib')):\n"
        "            f = f.f_back\n"
        "        missed.append(f'{name}<{f.f_globals.get(\"__name__\") if f else None}')\n"
        "sys.meta_path.append(_Last)\n"),
        "    sys.stdout.write('\\n' + ' '.join(missed))\n    sys.stdout.flush()\n")
    missed = stdout.rsplit("\n", 1)[-1].split()
    assert [m for m in missed if "<llb" in m] == []
