"""Where BuildKit v0.11.6's binaries are (../shared/buildkit beside the repository, or
$LLB_BUILDKIT_DIR), and small helpers around them for tests of llb's BuildKit side."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def buildkit_dir() -> Path:
    """The directory holding bin/buildkitd, bin/buildctl, bin/llbjson and buildkitd-run."""
    env = os.environ.get("LLB_BUILDKIT_DIR")
    if env:
        return Path(env)
    for base in (_REPO.parent, Path("/work")):
        if (base / "shared" / "buildkit" / "bin").is_dir():
            return base / "shared" / "buildkit"
    return _REPO.parent / "shared" / "buildkit"


BIN = buildkit_dir() / "bin"
LLBJSON = BIN / "llbjson"
BUILDCTL = BIN / "buildctl"
BUILDKITD = BIN / "buildkitd"
RUN = buildkit_dir() / "buildkitd-run"
MISSING = (f"BuildKit v0.11.6 binaries not found in {BIN} (set LLB_BUILDKIT_DIR); "
           f"they ship beside the repository on the team's machines and CI")


def llbjson(graph: dict, *, unique: str = "U", digests: bool = False) -> bytes:
    """What BuildKit's Go client (via llbjson) marshals for `graph`."""
    args = [str(LLBJSON), "-local-unique", unique] + (["-digests"] if digests else [])
    done = subprocess.run(args, input=json.dumps(graph).encode(), capture_output=True,
                          check=True)
    return done.stdout


def go_digests(graph: dict, *, unique: str = "U") -> list[str]:
    """The Go client's op digests for `graph`, definition order (the terminal op last)."""
    return [o["digest"] for o in json.loads(llbjson(graph, unique=unique, digests=True))["ops"]]
