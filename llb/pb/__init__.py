"""BuildKit's LLB wire format (solver/pb of BuildKit v0.11.6) for llb definitions.

`ops.proto` is the format, `ops_pb2` its generated module (`make proto` regenerates it),
`encode` turns an llb.Definition into BuildKit Definition bytes whose ops are byte-identical
to what BuildKit's Go client marshals for the same program, and `decode` reads a BuildKit
Definition from any client back into an llb.Definition. Importing this package loads
protobuf: the CLI imports it only for BuildKit definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llb.pb.decode import Decoded, decode, from_buildkit
from llb.pb.encode import Encoded, encode, host_platform
from llb.pb.errors import UnsupportedError

if TYPE_CHECKING:
    from llb.definition import Definition


def to_buildkit(definition: Definition, *, local_unique: str | None = None) -> bytes:
    """BuildKit Definition bytes of an llb.Definition (see `encode`)."""
    return encode(definition, local_unique=local_unique).data


__all__ = ["Decoded", "Encoded", "UnsupportedError", "decode", "encode", "from_buildkit",
           "host_platform", "to_buildkit"]
