"""The containers of dead llb processes on a root: killed and deleted (llb.executor.orphans)
before the snapshot store removes their rootfs or a cache mount is handed to a new exec.

A boundary of start-up: the executor is imported only on a root where an exec has run (a
cached solve of a graph without execs loads none of it)."""

from __future__ import annotations

import os

EXECUTOR_DIR = "executor"  # the executor's state directory under an llb root


def reap(root: str | os.PathLike[str]) -> list[str]:
    """Kill and delete the containers whose llb process died; returns their ids."""
    state = os.path.join(root, EXECUTOR_DIR)
    if not os.path.isdir(state):
        return []  # no exec ever ran here
    from pathlib import Path

    from llb.executor.orphans import reap_orphans

    return reap_orphans(Path(state))
