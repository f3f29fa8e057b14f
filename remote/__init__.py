"""Running llb definitions on BuildKit: a buildkitd, local or remote, driven through
`buildctl` (BuildKit's own client). The definition goes over as BuildKit's LLB (llb.pb), the
daemon's progress comes back as llb's progress events, a failure as llb's SolveError.

    from llb.remote import BuildkitBackend
    BuildkitBackend(addr="unix:///run/buildkit/buildkitd.sock").solve(definition, locals, output)
"""

from __future__ import annotations

from llb.remote.backend import BuildkitBackend
from llb.remote.errors import BackendError

__all__ = ["BackendError", "BuildkitBackend"]
