"""`llb solve --output type=oci|docker|image`: the image example builds offline and is read by
skopeo and umoci, and runs; an export reports as one more progress line (json events with
current/total per blob; plain and tty views render them); a bad image output spec is exit 2
before anything is solved."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from exechelp import BUSYBOX, needs_runc
from imageexport import need, skopeo_inspect, tree, umoci_unpack, untar
from llb.cli.main import main
from llb.cli.progress import PlainRenderer, TtyRenderer, transfer_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "image" / "build.py"



def _llb(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


def _build(tmp_path: Path) -> Path:
    build = tmp_path / "build.py"
    build.write_text("import llb\n\ndef build():\n"
                     "    a = llb.scratch().file(llb.mkfile('/a', 'a\\n'), name='make a')\n"
                     "    b = llb.scratch().file(llb.mkfile('/b', 'b\\n'), name='make b')\n"
                     "    return llb.merge([a, b]).cmd(['/a'])\n")
    return build


@needs_runc
def test_the_image_example_builds_offline_and_runs(tmp_path: Path) -> None:
    need("skopeo", "umoci")
    out = tmp_path / "image.tar"
    code, err = _llb("solve", str(EXAMPLE), "--root", str(tmp_path / "root"), "--local",
                     f"busybox={BUSYBOX.parent}", "--progress", "plain",
                     "--output", f"type=oci,dest={out},name=llb/hello:1")
    assert code == 0, err
    assert "exporting to OCI image" in err
    config = skopeo_inspect(f"oci-archive:{out}:1", config=True)
    assert config["config"]["Entrypoint"] == ["/bin/sh", "/app/hello.sh"]
    assert config["config"]["User"] == "nobody" and config["config"]["WorkingDir"] == "/app"
    assert config["config"]["Labels"]["org.opencontainers.image.title"] == "hello"
    created_by = [h["created_by"] for h in config["history"]]
    assert created_by == ["busybox files", "busybox --install -s /bin", "app files"]
    rootfs = umoci_unpack(untar(out, tmp_path / "layout"), "1", tmp_path / "bundle")
    got = tree(rootfs)
    assert got["app/VERSION"] == "file:0o644:hello 1.0\n"
    assert got["bin/sh"] == "link:/bin/busybox"
    run = subprocess.run(["chroot", str(rootfs), "/bin/sh", "/app/hello.sh"],
                         capture_output=True, text=True, timeout=30)
    assert run.stdout == "hello from hello 1.0 on Linux\n", run.stderr


def test_json_progress_has_the_export_and_its_blobs(tmp_path: Path) -> None:
    code, err = _llb("solve", str(_build(tmp_path)), "--root", str(tmp_path / "root"),
                     "--progress", "json", "--output",
                     f"type=docker,dest={tmp_path / 'd.tar'},name=x:1")
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    export = [e for e in events if e["vertex"] == "export"]
    assert [e["event"] for e in export][0] == "start" and export[-1]["event"] == "done"
    progress = [e for e in export if e["event"] == "progress"]
    assert {e["id"] for e in progress if e["current"] == e["total"]} >= {
        e["id"] for e in progress}
    assert all(set(e) >= {"id", "action", "current", "total", "time", "name"} for e in progress)
    solved = {e["vertex"] for e in events if e["event"] in ("done", "cached")} - {"export"}
    assert len(solved) == 4  # scratch, a, b and the merge


def test_bad_image_specs_exit_2_before_solving(tmp_path: Path) -> None:
    for spec in ("type=oci,dest=x.tar,compression=brotli", "type=image",
                 "type=docker,dest=x.tar,compression=zstd"):
        code, err = _llb("solve", str(_build(tmp_path)), "--root", str(tmp_path / "root"),
                         "--output", spec)
        assert code == 2 and err.startswith("error: --output") and err.count("\n") == 1, err
    assert not (tmp_path / "root").exists()


def _ev(kind: str, **extra: object) -> dict:
    return {"event": kind, "vertex": "export", "name": "pushing image x", "index": 3,
            "time": 100.0, **extra}


def test_plain_view_of_an_export() -> None:
    out = io.StringIO()
    r = PlainRenderer(out)
    r.begin(2)
    r.event(_ev("start"))
    r.event(_ev("progress", id="sha256:" + "ab" * 32, action="push", current=10, total=2000))
    r.event(_ev("progress", id="sha256:" + "ab" * 32, action="push", current=1500, total=2000))
    r.event(_ev("progress", id="sha256:" + "ab" * 32, action="push", current=2000, total=2000))
    r.event(_ev("done", duration=0.5))
    r.end()
    lines = out.getvalue().splitlines()
    assert lines[0] == "#3 pushing image x"  # no [3/2]: the export is not a graph vertex
    assert lines[1] == "#3 push sha256:abababababab 10B / 2kB"
    assert lines[2] == "#3 push sha256:abababababab 2kB done"  # the middle one throttled
    assert lines[3] == "#3 DONE 0.5s"


def test_transfer_text_with_an_unknown_total() -> None:
    assert transfer_text({"id": "layer:0123456789abcdef", "action": "compress", "current": 5000,
                          "total": -1}) == "compress layer:0123456789ab 5kB"


def test_tty_view_of_an_export() -> None:
    out = io.StringIO()
    r = TtyRenderer(out)
    r.total = 2
    r.event(_ev("start"))
    r.event(_ev("progress", id="sha256:" + "cd" * 32, action="push", current=1, total=10))
    line = r._lines["export"]
    assert "push sha256:cdcdcdcdcdcd 1B / 10B" in r._fmt(line, 120, logs=True)
    r.event(_ev("done", duration=0.1))
    text = r._fmt(line, 120)
    assert text.startswith(" => pushing image x") and "[3/2]" not in text


def test_a_finished_blob_is_told_once() -> None:
    from llb.solver.progress import Progress, Recorder

    rec = Recorder()
    p = Progress(rec)
    for current in (0, 5, 10, 10, 10):
        p.transfer("v", "name", 1, "sha256:" + "1" * 64, current, 10, "pull")
    assert [e["current"] for e in rec.events] == [0, 10]
    p.transfer("v", "name", 1, "sha256:" + "1" * 64, 0, 10, "pull")  # started over
    p.transfer("v", "name", 1, "sha256:" + "1" * 64, 10, 10, "pull")
    assert [e["current"] for e in rec.events] == [0, 10, 0, 10]


@pytest.mark.parametrize("kind", ["json", "plain"])
def test_byte_progress_is_written_as_it_comes(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long pull shows on stderr while it runs: progress lines are not held back until the
    next vertex event (at most LIVE_INTERVAL between writes)."""
    import llb.cli.progress as progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    r = progress.JsonRenderer(out) if kind == "json" else progress.PlainRenderer(out)
    r.begin(2)
    r.event(_ev("start"))
    written = out.getvalue()
    blob = "sha256:" + "ef" * 32
    r.event(_ev("progress", id=blob, action="pull", current=1, total=10))
    now[0] += progress.LIVE_INTERVAL + progress.PLAIN_PROGRESS_INTERVAL
    r.event(_ev("progress", id=blob, action="pull", current=5, total=10))
    text = out.getvalue()[len(written):]
    assert ("pull sha256:efefefefefef 5B / 10B" in text) if kind == "plain" else \
        ('"current":5' in text)
