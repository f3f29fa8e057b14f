"""The test registries' start-up: a registry whose port was taken between free_port() and its
bind must not be taken as up because another worker's registry answers on that port (CI saw a
push go to one registry and skopeo's token come from another's service)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

import registryhelp
from registryhelp import IDENTITY_HEADER, Registry


def test_a_port_held_by_another_registry_is_not_taken_for_ours(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ports = iter([registry.port, registry.port])
    real = registryhelp.free_port
    monkeypatch.setattr(registryhelp, "free_port", lambda: next(ports, None) or real())
    second = Registry(tmp_path / "second")
    try:
        assert second.port != registry.port
        mine = urllib.request.urlopen(f"http://{second.host}/v2/", timeout=5)
        assert mine.headers[IDENTITY_HEADER] == second.identity
        theirs = urllib.request.urlopen(f"http://{registry.host}/v2/", timeout=5)
        assert theirs.headers[IDENTITY_HEADER] != second.identity
        assert "address already in use" in second.log.read_text()
    finally:
        second.stop()
