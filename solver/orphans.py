"""The containers of dead llb processes on a root: killed and deleted (llb.executor.orphans)
before the snapshot store removes their rootfs or a cache mount is handed to a new exec.

A boundary of start-up: the executor is imported only on a root where an exec has run (a
cached solve of a graph without execs loads none of it)."""

from __future__ import annotations

import os
from pathlib import Path

EXECUTOR_DIR = "executor"  # the executor's state directory under an llb root


def reap(root: Path) -> list[str]:
    """Kill and delete the containers whose llb process died; returns their ids."""
    state = Path(root) / EXECUTOR_DIR
    if not os.path.isdir(state):
        return []  # no exec ever ran here
    from llb.executor.orphans import reap_orphans

    return reap_orphans(state)
