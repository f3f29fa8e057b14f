"""The image config a definition carries (llb.imagemeta): set on states by entrypoint(),
cmd(), label(), expose() and from env/cwd/user; metadata that changes no op digest; an
optional "image" key in the definition bytes that old definitions lack."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import msgpack
import pytest

import llb
from llb.imagemeta import ImageMeta
from programs import PROGRAMS

GOLDEN = json.loads((Path(__file__).with_name("golden.json")).read_text())


def _app() -> llb.State:
    return llb.scratch().file(llb.mkdir("/app").mkfile("/app/run", "#!/bin/sh\n", 0o755))


def test_setters_change_no_digest_and_reach_the_definition() -> None:
    plain = _app()
    s = (plain.env("A", "1").cwd("/app").user("1000:1000").entrypoint(["/app/run"])
         .cmd("--port 80").label("b", "2").label("a", "x").label("a", "1")
         .expose(80, "53/udp", "80/tcp"))
    d = s.to_definition()
    assert d.output == plain.to_definition().output
    assert list(d.ops) == list(plain.to_definition().ops)
    assert d.image == ImageMeta(env=("A=1",), working_dir="/app", user="1000:1000",
                                entrypoint=("/app/run",), cmd=("--port", "80"),
                                labels=(("a", "1"), ("b", "2")), expose=("53/udp", "80/tcp"))
    again = llb.Definition.from_bytes(d.to_bytes())
    assert again == d and again.to_bytes() == d.to_bytes()
    assert s.get_entrypoint() == ["/app/run"] and s.get_labels() == {"a": "1", "b": "2"}


def test_nothing_set_means_no_image_key_and_golden_bytes_unchanged() -> None:
    d = _app().to_definition()
    assert d.image is None
    assert list(msgpack.unpackb(d.to_bytes())) == ["metadata", "ops", "output", "version"]
    for name, program in PROGRAMS.items():
        data = program().to_definition().to_bytes()
        assert hashlib.sha256(data).hexdigest() == GOLDEN[name]["bytes_sha256"], name


def test_image_config_carries_through_runs_and_files() -> None:
    base = _app().entrypoint([]).cmd(["sh"]).label("k", "v")
    later = base.file(llb.mkfile("/x", "y"))
    assert later.to_definition().image == base.to_definition().image
    assert later.get_entrypoint() == [] and later.get_cmd() == ["sh"]
    merged = llb.merge([later, _app().file(llb.mkfile("/z", "1"))])
    assert merged.get_labels() == {"k": "v"}  # a merge keeps its first input's settings


def test_empty_entrypoint_differs_from_unset() -> None:
    unset = _app().cmd(["sh"]).to_definition()
    empty = _app().cmd(["sh"]).entrypoint([]).to_definition()
    assert unset.image is not None and unset.image.entrypoint is None
    assert empty.image is not None and empty.image.entrypoint == ()
    assert unset.to_bytes() != empty.to_bytes()


@pytest.mark.parametrize("port", ["0", "65536", "80/icmp", "http", "", True, 1.5])
def test_bad_ports(port: object) -> None:
    with pytest.raises(llb.DefinitionError, match="expose"):
        _app().expose(port)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [
    lambda s: s.label("", "v"), lambda s: s.label("k", 1), lambda s: s.cmd([1]),
    lambda s: s.entrypoint("unterminated 'quote"), lambda s: s.expose(),
])
def test_bad_setters(call: object) -> None:
    with pytest.raises(llb.DefinitionError):
        call(_app())  # type: ignore[operator]


def _with_image(image: object) -> bytes:
    top = msgpack.unpackb(_app().to_definition().to_bytes())
    return msgpack.packb({"image": image, **top}, use_bin_type=True)


@pytest.mark.parametrize("image, message", [
    ({}, "empty"),
    ({"bogus": 1}, "unknown field"),
    ({"user": "u", "env": ["A=1"]}, "sorted order"),
    ({"env": "A=1"}, "array of strings"),
    ({"env": ["A"]}, "KEY=value"),
    ({"cmd": [1]}, "expected a string"),
    ({"labels": [["b", "1"], ["a", "2"]]}, "sorted"),
    ({"labels": [["a"]]}, "pairs"),
    ({"expose": ["80"]}, "canonically written"),
    ({"expose": ["99999/tcp"]}, "bad port"),
    ({"working_dir": "rel"}, "absolute"),
    ({"user": ""}, "canonically"),
    ([1], "must be a map"),
])
def test_hostile_image_configs_are_refused(image: object, message: str) -> None:
    with pytest.raises(llb.DefinitionError, match=message):
        llb.Definition.from_bytes(_with_image(image))


def test_a_well_formed_image_key_loads() -> None:
    d = llb.Definition.from_bytes(_with_image({"cmd": ["sh"], "env": ["A=1"]}))
    assert d.image == ImageMeta(env=("A=1",), cmd=("sh",))


def test_buildkit_encoding_ignores_the_image_config() -> None:
    pb = pytest.importorskip("llb.pb")
    plain, with_image = _app(), _app().cmd(["sh"]).label("a", "b")
    assert pb.encode(plain.to_definition()).data == pb.encode(with_image.to_definition()).data


def test_dump_shows_the_image_config() -> None:
    from llb.cli.dump import to_json

    doc = to_json(_app().cmd(["sh"]).to_definition())
    assert doc["image"] == {"cmd": ["sh"]}
    assert "image" not in to_json(_app().to_definition())
