"""llb: a Python build-graph DSL in the spirit of BuildKit's LLB."""

from llb.actions import FileActions, copy, mkdir, mkfile, rm
from llb.codec import op_digest
from llb.definition import Definition, op_outputs
from llb.errors import BuildFileError, DefinitionError, LLBError
from llb.merge import diff, merge
from llb.mounts import MountSpec, cache_mount, mount, tmpfs
from llb.ops import (
    Copy, DiffOp, ExecOp, FileOp, Input, MergeOp, Mkdir, Mkfile, Mount, OpMetadata, Rm,
    SourceOp,
)
from llb.refs import normalize_image_ref
from llb.sources import image, local, oci_layout, scratch
from llb.state import ExecState, State

__all__ = [
    "BuildFileError", "Copy", "Definition", "DefinitionError", "DiffOp", "ExecOp", "ExecState",
    "FileActions", "FileOp", "Input", "LLBError", "MergeOp", "Mkdir", "Mkfile", "Mount",
    "MountSpec", "OpMetadata", "Rm", "SourceOp", "State", "cache_mount", "copy", "diff",
    "image", "local", "merge", "mkdir", "mkfile", "mount", "normalize_image_ref", "oci_layout",
    "op_digest", "op_outputs", "rm", "scratch", "tmpfs",
]
