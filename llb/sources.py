"""Source states: scratch, registry images, OCI layouts and local directories."""

from __future__ import annotations

import os

from llb import ops as _ops
from llb.actions import patterns
from llb.errors import DefinitionError
from llb.paths import clean
from llb.node import DEFAULT_SETTINGS, Node, Settings, new_node
from llb.resolver import ResolvedImage, current
from llb.state import State
from llb.validate import LOCAL_NAME_PATTERN, check_digest, matches

_PLATFORM = r"^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$"  # compiled on first use

_SCRATCH: Node | None = None


def scratch() -> State:
    """The empty state."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Node(_ops.SourceOp(_ops.SCRATCH), (), typed=True)
    return State(_SCRATCH)


def image(ref: str, *, platform: str | None = None, name: str = "",
          description: str = "") -> State:
    """An image from a registry; `ref` is normalised like Docker (busybox ->
    docker.io/library/busybox:latest). platform ("os/arch[/variant]") picks one from a
    multi-platform image (default: the host's). With a resolver in effect (llb.resolver),
    the reference is pinned to the digest it names now and the state takes the image's
    Env, WorkingDir and User."""
    from llb.refs import normalize_image_ref  # (a build file without images never loads it)

    full = normalize_image_ref(ref)
    attrs = _platform_attrs(platform)
    resolver = current()
    settings = DEFAULT_SETTINGS
    if resolver is not None:
        found = resolver.resolve_image(full, platform)
        full = _pinned(full, found.digest)
        settings = _settings(found)
    op = _ops.SourceOp(_ops.source_identifier(_ops.SCHEME_IMAGE, full), attrs=attrs)
    return State(new_node(op, (), name=name, description=description), 0, settings)


def _platform_attrs(platform: str | None) -> tuple[tuple[str, str], ...]:
    if platform is None:
        return ()
    if not isinstance(platform, str) or not matches(_PLATFORM, platform):
        raise DefinitionError(f"platform {platform!r} must be os/arch[/variant], e.g. "
                              "linux/amd64")
    return (("platform", platform),)


def _pinned(ref: str, digest: str) -> str:
    """ref (normalised) pinned to digest, its tag kept: name:tag@sha256:..."""
    check_digest(digest, "resolved image digest")
    name = ref.partition("@")[0]
    return f"{name}@{digest}"


def _settings(found: ResolvedImage) -> Settings:
    """The run settings an image's config gives a state."""
    config = found.config
    env: list[tuple[str, str]] = []
    for item in config.env:
        key, eq, value = item.partition("=")
        if key and eq:
            env = [kv for kv in env if kv[0] != key] + [(key, value)]
    cwd = config.working_dir if config.working_dir.startswith("/") else "/"
    return Settings(env=tuple(env), cwd=clean(cwd), user=config.user,
                    entrypoint=config.entrypoint, cmd=config.cmd,
                    labels=tuple(sorted(dict(config.labels).items())),
                    expose=tuple(sorted(set(config.expose))))


def oci_layout(path: str | os.PathLike[str], *, tag: str | None = None,
               digest: str | None = None, platform: str | None = None, name: str = "",
               description: str = "") -> State:
    """An image from an OCI image layout (a directory, or a tar of one), by tag (default
    "latest") or by manifest digest. `path` is a path (made absolute), or a NAME given to
    the solver as `--oci-layout NAME=PATH` (a single component, no "/"). With a resolver in
    effect the state takes the image's Env, WorkingDir and User, as for llb.image (a tag
    stays a tag: the solver reads it from the layout, no network involved)."""
    if tag is not None and digest is not None:
        raise DefinitionError("oci_layout: give tag= or digest=, not both")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise DefinitionError(f"oci_layout: path must be a non-empty path, not {path!r}")
    if "/" not in path and path not in (".", "..") and matches(LOCAL_NAME_PATTERN, path):
        where = path  # a name, mapped with --oci-layout NAME=PATH when solving
    else:
        where = clean(os.path.abspath(path))
    attrs = _platform_attrs(platform)
    settings = DEFAULT_SETTINGS
    resolver = current()
    if digest is not None:
        check_digest(digest, "oci_layout digest")
    if resolver is not None:
        found = resolver.resolve_layout(where, tag if digest is None else None, digest,
                                        platform)
        settings = _settings(found)
    if digest is not None:
        locator = f"{where}@{digest}"
    else:
        locator = f"{where}:{'latest' if tag is None else tag}"
    ident = _ops.source_identifier(_ops.SCHEME_OCI_LAYOUT, locator)
    op = _ops.SourceOp(ident, attrs=attrs)
    return State(new_node(op, (), name=name, description=description), 0, settings)


def local(name: str, *, include: list[str] | tuple[str, ...] = (),
          exclude: list[str] | tuple[str, ...] = (), description: str = "") -> State:
    """A directory of the user's machine, given to the solver as `--local NAME=PATH`;
    include/exclude are gitignore-style patterns (a progress name: `.with_name(...)`)."""
    if not isinstance(name, str) or not matches(LOCAL_NAME_PATTERN, name):
        raise DefinitionError(f"local name {name!r} must match {LOCAL_NAME_PATTERN}")
    op = _ops.SourceOp(_ops.source_identifier(_ops.SCHEME_LOCAL, name), include=patterns(include, "include"),
                       exclude=patterns(exclude, "exclude"))
    return State(new_node(op, (), description=description))
