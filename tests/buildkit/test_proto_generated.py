"""llb/pb/ops_pb2.py (committed) is what `make proto` generates from llb/pb/ops.proto, and the
format is BuildKit v0.11.6's: the same messages, fields, numbers and types as the descriptor
compiled into BuildKit's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llb.pb import ops_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def test_generated_module_is_current(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}",
                    f"--pyi_out={tmp_path}", "llb/pb/ops.proto"], cwd=ROOT, check=True)
    for name in ("ops_pb2.py", "ops_pb2.pyi"):
        assert (tmp_path / "llb/pb" / name).read_text() == (ROOT / "llb/pb" / name).read_text(), \
            f"llb/pb/{name} is stale: run `make proto`"


def test_field_numbers_of_the_wire_format():
    # a sample of BuildKit v0.11.6's numbers (solver/pb/ops.proto), where a mistake would
    # change every digest silently
    numbers = {
        ("Op", "inputs"): 1, ("Op", "exec"): 2, ("Op", "source"): 3, ("Op", "file"): 4,
        ("Op", "merge"): 6, ("Op", "diff"): 7, ("Op", "platform"): 10, ("Op", "constraints"): 11,
        ("Meta", "hostname"): 7, ("Meta", "removeMountStubsRecursive"): 11,
        ("Mount", "TmpfsOpt"): 19, ("Mount", "cacheOpt"): 20, ("Mount", "resultID"): 23,
        ("FileActionCopy", "timestamp"): 11, ("FileActionCopy", "exclude_patterns"): 13,
        ("OpMetadata", "caps"): 5, ("Definition", "Source"): 3,
    }
    for (message, field), number in numbers.items():
        assert getattr(pb, message).DESCRIPTOR.fields_by_name[field].number == number
    assert "alwaysReplaceExistingDestPaths" not in pb.FileActionCopy.DESCRIPTOR.fields_by_name
