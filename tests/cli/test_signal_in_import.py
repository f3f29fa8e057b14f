"""A signal can come while a module is half imported (at start-up, or a lazy import in a
command): the handler must import nothing, or it meets that half-made module. Once a SIGHUP
during `enum`'s import made signal.py's own import fail with a NameError traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

# runs `llb ARGS...` with TARGET's import stopped by SIGNUM just as its (empty) module is in
# sys.modules and its body is about to run: the moment a handler that imports would break
_WRAPPER = """
import os, sys
from importlib.machinery import PathFinder

target, signum = sys.argv[1], int(sys.argv[2])


class _Hook:
    def find_spec(self, name, path=None, target_module=None):
        if name != target:
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path)
        real = spec.loader.exec_module

        def exec_module(module):
            os.kill(os.getpid(), signum)
            real(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Hook())
sys.argv = ["llb", *sys.argv[3:]]
from llb.cli.main import run

run()
"""

_PRUNE, _SOLVE = ["prune", "--root", "ROOT"], ["solve", "--root", "ROOT", "BUILD"]
# start-up (enum ... llb.cli.group), the quick solve's start, and imports inside a command
_CASES = [("enum", signal.SIGHUP, _PRUNE), ("re", signal.SIGTERM, _PRUNE),
          ("typing", signal.SIGINT, _PRUNE), ("click", signal.SIGHUP, _PRUNE),
          ("llb.cli.group", signal.SIGTERM, _PRUNE), ("sqlite3", signal.SIGINT, _PRUNE),
          ("llb.cli.quick", signal.SIGHUP, _SOLVE), ("llb.solver", signal.SIGTERM, _SOLVE),
          ("msgpack", signal.SIGINT, _SOLVE)]


@pytest.mark.parametrize("module,sig,args", _CASES, ids=[m for m, _, _ in _CASES])
def test_a_signal_while_a_module_is_half_imported(module: str, sig: signal.Signals,
                                                  args: list[str], tmp_path: Path):
    build = tmp_path / "build.py"
    build.write_text("import llb\n"
                     "def build():\n"
                     "    return llb.scratch().file(llb.mkfile('/a', b'a'))\n")
    where = {"ROOT": str(tmp_path / "root"), "BUILD": str(build)}
    p = subprocess.run([sys.executable, "-c", _WRAPPER, module, str(int(sig)),
                        *[where.get(a, a) for a in args]],
                       capture_output=True, text=True, timeout=60)
    assert p.stderr == f"error: interrupted by {sig.name}\n"
    assert p.returncode == 128 + sig


def test_the_handler_imports_nothing():
    # every import is refused, and signal.py is forgotten (as before anything imported it)
    code = ("import sys\n"
            "from llb.cli import signals\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        raise AssertionError('imported ' + name)\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "sys.modules.pop('signal', None)\n"
            "for n in signals.SIGNALS:\n"
            "    try:\n"
            "        signals._handler(n, None)\n"
            "    except signals.Interrupted as e:\n"
            "        print(e.message, e.exit_code)\n"
            "    signals._received.clear()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["interrupted by SIGINT 130", "interrupted by SIGTERM 143",
                                     "interrupted by SIGHUP 129"]
