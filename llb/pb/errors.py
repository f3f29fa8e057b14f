"""Errors of the BuildKit wire format: what llb cannot express in BuildKit's LLB, or a
BuildKit definition uses that llb cannot run. Both are bad input (exit status 2)."""

from __future__ import annotations

from llb.errors import DefinitionError


class UnsupportedError(DefinitionError):
    """A field, option or op that one side has and the other cannot express; the message
    names it (e.g. `exec mount /run/secret: SECRET mounts are not supported`)."""
