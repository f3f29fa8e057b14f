"""The image resolver the CLI hands the DSL while a build file is evaluated (llb.resolver):
registry references and OCI layout entries resolved through the solver's puller, so the
root's content store answers first (a pinned image whose manifest and config are stored
needs no network) and the registry is asked only for the rest (what a tag names now)."""

from __future__ import annotations

import os

from llb.imagemeta import ImageMeta
from llb.resolver import ResolvedImage
from llb.solver.errors import InputError
from llb.solver.puller import Puller

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Mapping
    from llb.content.platforms import Platform
    from llb.content.resolve import Resolved


class PullerResolver:
    """llb.resolver.Resolver over a Puller; `oci_layouts` maps `--oci-layout` names."""

    def __init__(self, puller: Puller,
                 oci_layouts: Mapping[str, str | os.PathLike[str]] | None = None):
        self.puller = puller
        self.oci_layouts = dict(oci_layouts or {})

    def resolve_image(self, ref: str, platform: str | None) -> ResolvedImage:
        return _meta(self.puller.resolve_registry(ref, _platform(platform)))

    def resolve_layout(self, path: str, tag: str | None, digest: str | None,
                       platform: str | None) -> ResolvedImage:
        if not path.startswith("/"):
            mapped = self.oci_layouts.get(path)
            if mapped is None:
                raise InputError(f"no --oci-layout mapping for layout {path!r} (pass "
                                 f"--oci-layout {path}=PATH)")
            from pathlib import Path  # a layout's: not for a cached solve

            path = str(Path(mapped).absolute())
        if digest is None and tag is None:
            tag = "latest"
        return _meta(self.puller.resolve_layout(path, tag, digest, _platform(platform)))


def _platform(spec: str | None) -> Platform | None:
    if spec is None:
        return None
    from llb.content.platforms import Platform

    try:
        return Platform.parse(spec)
    except ValueError as e:
        raise InputError(str(e)) from None


def _meta(resolved: Resolved) -> ResolvedImage:
    c = resolved.config
    return ResolvedImage(resolved.root.digest, ImageMeta(
        env=tuple(c.env), working_dir=c.working_dir, user=c.user,
        entrypoint=tuple(c.entrypoint) if c.entrypoint is not None else None,
        cmd=tuple(c.cmd) if c.cmd is not None else None,
        labels=tuple(sorted(c.labels.items())), expose=tuple(c.exposed_ports)))
