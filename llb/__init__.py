"""llb: a Python build-graph DSL in the spirit of BuildKit's LLB."""

from llb.errors import BuildFileError, DefinitionError, LLBError
from llb.ops import (
    Copy, DiffOp, ExecOp, FileOp, Input, MergeOp, Mkdir, Mkfile, Mount, OpMetadata, Rm,
    SourceOp,
)
