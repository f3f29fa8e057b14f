"""Image references are normalised like docker/distribution (as BuildKit does)."""

import pytest

from llb import DefinitionError, normalize_image_ref

DG = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("ref, want", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
    ("user/repo", "docker.io/user/repo:latest"),
    ("ghcr.io/o/r:v1.2", "ghcr.io/o/r:v1.2"),
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x/y:t", "localhost:5000/x/y:t"),
    ("127.0.0.1:5000/img", "127.0.0.1:5000/img:latest"),
    (f"busybox@{DG}", f"docker.io/library/busybox@{DG}"),
    (f"busybox:1.36@{DG}", f"docker.io/library/busybox:1.36@{DG}"),
    ("a/b-c__d.e/f", "docker.io/a/b-c__d.e/f:latest"),
])
def test_normalise(ref, want):
    assert normalize_image_ref(ref) == want
    assert normalize_image_ref(want) == want


@pytest.mark.parametrize("ref", [
    "", "Busybox", "docker.io/Library/busybox", "busybox:", "busybox:-tag", "busybox@sha256:12",
    "bad host!/x", "a//b", "a/", "/a", "x:" + "t" * 129, "a/" + "b" * 300, "busy box",
])
def test_invalid(ref):
    with pytest.raises(DefinitionError, match="invalid image reference"):
        normalize_image_ref(ref)
