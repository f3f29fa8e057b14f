"""Errors of the BuildKit backend that are the user's setup, not the build (exit 2):
no buildctl, no address, a daemon that does not answer."""

from __future__ import annotations

from llb.errors import LLBError


class BackendError(LLBError):
    """buildctl or buildkitd cannot be used as asked; the message says what to fix."""
