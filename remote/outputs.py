"""`--output` for `--backend buildkit`: an llb output spec (already checked by its exporter,
so it means what it means locally) written as `buildctl build --output` of BuildKit v0.11.6.

- local, tar: `dest` made absolute (`-` is buildctl's stdout).
- oci: `tar=false` when llb writes a directory (dest ending in `/`, an existing directory).
- docker, oci, image: `name`, `oci-mediatypes`, `compression`, `compression-level` as they
  are, `oci-mediatypes=true` for an image unless told (llb's default, not BuildKit's), plus `force-compression=true` when a compression is asked for: BuildKit otherwise
  reuses a layer's blob of an earlier export in another compression, where llb gives every
  layer it built the compression asked for.
- `type=registry` is llb's alias of `type=image` (buildctl v0.11.6 has no such exporter);
  `push` and `registry.insecure` as they are.
- The definition's image config (Env, WorkingDir, User, Entrypoint, Cmd, Labels,
  ExposedPorts) goes as `containerimage.config`, as a BuildKit frontend hands it over.

Refused (OutputSpecError, exit 2, before anything runs): SOURCE_DATE_EPOCH with an image
output (BuildKit v0.11.6 cannot clamp the layers' file times, v0.13 can) and an image of an
empty result (buildctl cannot send an empty definition)."""

from __future__ import annotations

import io
import os

from llb.content.imageconfig import ImageConfig
from llb.content.platforms import host_platform
from llb.imagemeta import ImageMeta
from llb.solver.errors import OutputSpecError
from llb.solver.exporters import OutputSpec

IMAGE_TYPES = ("oci", "docker", "image", "registry")
_EPOCH = "SOURCE_DATE_EPOCH"
_PASSED = ("name", "oci-mediatypes", "compression", "compression-level", "push",
           "registry.insecure")


def check_output(spec: OutputSpec) -> None:
    """OutputSpecError for what llb's exporter accepts but BuildKit v0.11.6 cannot do."""
    if spec.type in IMAGE_TYPES and os.environ.get(_EPOCH):
        raise OutputSpecError(f"--output {spec.text}: {_EPOCH} with --backend buildkit: "
                              "BuildKit v0.11.6 cannot clamp the layers' file times (v0.13 "
                              "can); unset it or use --backend local")


def buildctl_output(spec: OutputSpec, image: ImageMeta | None = None) -> str:
    """The `--output` value buildctl takes for `spec` (CSV, as buildctl parses it)."""
    check_output(spec)
    typ = "image" if spec.type == "registry" else spec.type
    fields = [f"type={typ}"]
    if "dest" in spec.attrs:
        dest = spec.dest if spec.dest == "-" else os.path.abspath(spec.dest)
        fields.append(f"dest={dest}")
    if spec.type not in IMAGE_TYPES:
        return _csv(fields)
    if typ == "oci" and spec.dest != "-" and _oci_dir(spec):
        fields.append("tar=false")
    fields += [f"{key}={spec.attrs[key]}" for key in _PASSED if key in spec.attrs]
    if typ == "image" and "oci-mediatypes" not in spec.attrs:
        fields.append("oci-mediatypes=true")  # llb's default; BuildKit's is Docker's
    if "compression" in spec.attrs:
        fields.append("force-compression=true")
    if image is not None and not image.is_empty():
        fields.append("containerimage.config=" + _config(image))
    return _csv(fields)


def _oci_dir(spec: OutputSpec) -> bool:
    """True when llb's oci exporter writes a directory for `spec` (not a tar)."""
    from llb.solver.exporters.oci import is_dir

    return is_dir(spec)


def _config(image: ImageMeta) -> str:
    """The image config BuildKit's exporter completes (rootfs, history, created)."""
    config = ImageConfig.new(host_platform(), env=image.env, working_dir=image.working_dir,
                             user=image.user, entrypoint=image.entrypoint, cmd=image.cmd,
                             labels=dict(image.labels), exposed_ports=image.expose)
    return config.to_bytes().decode()


def _csv(fields: list[str]) -> str:
    """One CSV record (Go's encoding/csv reads it back field for field)."""
    import csv

    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


__all__ = ["IMAGE_TYPES", "buildctl_output", "check_output"]
