"""A build that uses no images pays nothing for them: importing the content store loads
neither json nor the HTTP client; only the registry client's own modules load httpx."""

from __future__ import annotations

import subprocess
import sys


def _loaded(code: str) -> list[str]:
    probe = ("import sys\n" + code + "\nprint(sorted(m for m in ('json', 'httpx', 'ssl', "
             "'concurrent.futures', 'tarfile') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # a printed list of str


def test_the_store_loads_no_json_and_no_http_client() -> None:
    assert _loaded("import llb.content\nfrom llb.content.store import ContentStore") == []


def test_oci_facts_and_layouts_load_no_http_client() -> None:
    loaded = _loaded("import llb.content.manifest, llb.content.imageconfig, "
                     "llb.content.resolve, llb.content.credentials, llb.content.auth, "
                     "llb.content.layout")
    assert "httpx" not in loaded and "ssl" not in loaded


def test_the_registry_client_loads_httpx() -> None:
    assert "httpx" in _loaded("import llb.content.registry")
