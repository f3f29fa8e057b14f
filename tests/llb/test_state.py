"""The DSL: states, settings carried into runs, mounts, file actions, merge and diff."""

import datetime

import pytest

import llb
from llb import ops
from llb.ops import DEFAULT_PATH


def only_op(state: llb.State, kind: str):
    return state.to_definition().ops[state.output.digest]


def test_scratch_is_one_source_op():
    d = llb.scratch().to_definition()
    assert list(d.ops.values()) == [ops.SourceOp("scratch")]
    assert llb.scratch().is_scratch and llb.scratch() == llb.scratch()


def test_image_ref_is_normalised():
    assert llb.image("busybox").op.identifier == "docker-image://docker.io/library/busybox:latest"
    assert llb.image("busybox:1.36") == llb.image("docker.io/library/busybox:1.36")


def test_oci_layout_tag_digest_and_default(tmp_path):
    assert llb.oci_layout(tmp_path).op.identifier == f"oci-layout://{tmp_path}:latest"
    assert llb.oci_layout(tmp_path, tag="v1").op.identifier == f"oci-layout://{tmp_path}:v1"
    dg = "sha256:" + "ab" * 32
    assert llb.oci_layout(tmp_path, digest=dg).op.identifier == f"oci-layout://{tmp_path}@{dg}"
    with pytest.raises(llb.DefinitionError, match="not both"):
        llb.oci_layout(tmp_path, tag="v1", digest=dg)
    with pytest.raises(llb.DefinitionError):
        llb.oci_layout(tmp_path, digest="sha256:short")


def test_oci_layout_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert llb.oci_layout("lay/../layout").op.identifier == f"oci-layout://{tmp_path}/layout:latest"


def test_local_patterns_and_name_rules():
    s = llb.local("context", include=["src/**"], exclude="**/__pycache__")
    assert s.op == ops.SourceOp("local://context", include=("src/**",),
                                exclude=("**/__pycache__",))
    for bad in ["", "a/b", "x=y", " lead"]:
        with pytest.raises(llb.DefinitionError):
            llb.local(bad)
    with pytest.raises(llb.DefinitionError):
        llb.local("ctx", include=[""])


def test_settings_carry_into_runs_and_results():
    s = (llb.image("busybox").env("A", "1").env("B", "2").env("A", "3").cwd("/work")
         .cwd("sub").user("1000:1000").hostname("box").network("host"))
    assert s.get_env("A") == "3" and s.env_list() == ["B=2", "A=3"]
    assert s.get_cwd() == "/work/sub" and s.get_dir() == "/work/sub"
    assert (s.get_user(), s.get_hostname(), s.get_network()) == ("1000:1000", "box", "host")
    root = s.run("true").root()
    op = root.op
    assert op.env == ("B=2", "A=3", "PATH=" + DEFAULT_PATH)
    assert (op.cwd, op.user, op.hostname, op.network) == ("/work/sub", "1000:1000", "box", "host")
    # the result keeps the settings, so the next run sees them too
    op2 = root.run("true").root().op
    assert op2.env == op.env and op2.cwd == op.cwd
    assert s.del_env("A").env_list() == ["B=2"]


def test_path_from_state_env_replaces_default():
    op = llb.scratch().env("PATH", "/bin").run(["ls"]).op
    assert op.env == ("PATH=/bin",)


def test_run_options_apply_to_run_and_its_result():
    base = llb.image("busybox")
    ex = base.run("make all", env={"CC": "gcc"}, cwd="/src", user=7, network="host",
                  hostname="h", readonly_rootfs=False)
    op = ex.op
    assert op.args == ("make", "all") and op.cwd == "/src" and op.user == "7"
    assert op.env[0] == "CC=gcc" and op.network == "host" and op.hostname == "h"
    assert ex.root().get_env("CC") == "gcc" and ex.root().get_cwd() == "/src"
    assert base.get_env("CC") is None  # the base state is unchanged


def test_run_string_is_split_like_a_shell():
    op = llb.scratch().run("sh -c 'echo hi > /out'").op
    assert op.args == ("sh", "-c", "echo hi > /out")
    with pytest.raises(llb.DefinitionError):
        llb.scratch().run("echo 'unterminated")
    with pytest.raises(llb.DefinitionError):
        llb.scratch().run([])
    with pytest.raises(llb.DefinitionError):
        llb.scratch().run(["ok", 3])


def test_mounts_sorted_outputs_numbered_inputs_deduplicated():
    base, ctx, out = llb.image("busybox"), llb.local("ctx"), llb.scratch()
    ex = base.cwd("/w").run("make", mounts=[
        llb.tmpfs("/tmp", size=1 << 20),
        llb.mount("out", out),  # relative to the run's cwd
        llb.mount("/src", ctx, readonly=True, selector="sub/dir"),
        llb.cache_mount("/root/.cache", id="pip", sharing="locked"),
        llb.mount("/also", ctx),
    ])
    op = ex.op
    assert [m.dest for m in op.mounts] == ["/", "/also", "/root/.cache", "/src", "/tmp", "/w/out"]
    assert [m.output for m in op.mounts] == [0, 1, -1, -1, -1, 2]
    assert len(op.inputs) == 3  # base, ctx (mounted twice), scratch
    m = {m.dest: m for m in op.mounts}
    assert m["/src"].selector == "/sub/dir" and m["/src"].readonly
    assert m["/root/.cache"].type == "cache" and m["/root/.cache"].sharing == "locked"
    assert m["/root/.cache"].cache_id == "pip" and m["/tmp"].tmpfs_size == 1 << 20
    assert ex.get_mount("/w/out").output == llb.Input(ex.output.digest, 2)
    assert ex.get_mount("out").output.index == 2
    assert ex.get_mount("/").output.index == 0
    for dest in ["/src", "/tmp", "/root/.cache"]:
        with pytest.raises(llb.DefinitionError, match="no output"):
            ex.get_mount(dest)
    with pytest.raises(llb.DefinitionError, match="no mount"):
        ex.get_mount("/nope")


def test_bad_mounts_rejected():
    base = llb.scratch()
    with pytest.raises(llb.DefinitionError, match="two mounts"):
        base.run("x", mounts=[llb.tmpfs("/t"), llb.tmpfs("/t/")])
    with pytest.raises(llb.DefinitionError, match="over /"):
        base.run("x", mounts=[llb.tmpfs("/")])
    with pytest.raises(llb.DefinitionError, match="sharing"):
        base.run("x", mounts=[llb.cache_mount("/c", id="c", sharing="weird")])
    with pytest.raises(llb.DefinitionError):
        llb.cache_mount("/c", id="")
    with pytest.raises(llb.DefinitionError):
        llb.mount("/m", "not a state")
    with pytest.raises(llb.DefinitionError):
        base.run("x", mounts=["/m"])
    with pytest.raises(llb.DefinitionError, match="size"):
        base.run("x", mounts=[llb.tmpfs("/t", size=-1)])


def test_readonly_rootfs_has_only_mount_outputs():
    ex = llb.image("busybox").run("x", readonly_rootfs=True,
                                  mounts=[llb.mount("/out", llb.scratch())])
    assert ex.op.mounts[0].readonly and ex.op.mounts[0].output == -1
    assert ex.get_mount("/out").output.index == 0
    with pytest.raises(llb.DefinitionError, match="read-only rootfs"):
        ex.root()
    with pytest.raises(llb.DefinitionError, match="read-only rootfs"):
        ex.to_definition()


def test_file_actions_chain_into_one_fileop_with_options():
    ctx = llb.local("ctx")
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    s = llb.scratch().file(
        llb.mkdir("/a", 0o700, parents=True, owner=1000, created=when)
        .mkfile("/a/b", "text", 0o600, owner=("user", "group"), created=5)
        .copy(ctx, "src/", "/dst/", owner="1:2", mode=0o640, follow_symlinks=True,
              copy_dir_contents_only=True, create_dest_path=True, allow_wildcard=True,
              allow_empty_wildcard=True, include=["*.py"], exclude=["test_*"], created=when,
              always_replace_existing=True)
        .rm("/a/old*", allow_not_found=True, allow_wildcard=True))
    op = s.op
    assert op.inputs == (llb.scratch().output, ctx.output)
    mk, mf, cp, rm = op.actions
    assert mk == ops.Mkdir("/a", 0o700, True, "1000:1000", 1577836800 * 10**9)
    assert mf == ops.Mkfile("/a/b", b"text", 0o600, "user:group", 5)
    assert cp == ops.Copy(1, "/src", "/dst/", "1:2", 0o640, True, True, True, True, True,
                          ("*.py",), ("test_*",), 1577836800 * 10**9, True)
    assert rm == ops.Rm("/a/old*", True, True)


def test_file_paths_resolve_against_cwd_and_never_escape():
    ctx = llb.local("ctx").cwd("/project")
    s = llb.scratch().cwd("/work").file(
        llb.mkdir("a/../b/./c", parents=True)
        .mkfile("../../../../etc/x", b"")
        .rm("//double//slash/")
        .copy(ctx, "../up/file", "out/.")
        .copy(ctx, "/abs/../x", "/"))
    paths = [getattr(a, "path", None) for a in s.op.actions]
    assert paths[:3] == ["/work/b/c", "/etc/x", "/double/slash"]
    c1, c2 = s.op.actions[3:]
    assert (c1.src, c1.dest) == ("/up/file", "/work/out/")
    assert (c2.src, c2.dest) == ("/x", "/")
    for a in s.op.actions:
        for p in (getattr(a, "path", ""), getattr(a, "src", ""), getattr(a, "dest", "")):
            assert ".." not in p.split("/")


def test_copy_from_the_base_state_reads_input_zero():
    base = llb.scratch().file(llb.mkfile("/a", b"a"))
    s = base.file(llb.copy(base, "/a", "/b"))
    assert s.op.inputs == (base.output,) and s.op.actions[0].source == 0


def test_file_action_argument_errors():
    for make in [lambda: llb.mkdir("/a", 0o10000), lambda: llb.mkdir("/a", "755"),
                 lambda: llb.mkfile("/a", 3), lambda: llb.mkdir(""),
                 lambda: llb.mkdir("/a", parents=1), lambda: llb.mkfile("/a", created=1.5),
                 lambda: llb.mkfile("/a", created=-5), lambda: llb.mkdir("/a", owner=-1),
                 lambda: llb.copy("state?", "/a", "/b"), lambda: llb.mkdir("/a", owner=True),
                 lambda: llb.copy(llb.scratch(), "/a", "/b", include=[1])]:
        with pytest.raises(llb.DefinitionError):
            make()
    with pytest.raises(llb.DefinitionError, match="owner"):
        llb.scratch().file(llb.mkdir("/a", owner="a:b:c"))
    with pytest.raises(llb.DefinitionError, match="NUL"):
        llb.scratch().file(llb.mkdir("/a\x00b"))
    with pytest.raises(llb.DefinitionError):
        llb.scratch().file(llb.mkfile("/", b""))
    with pytest.raises(llb.DefinitionError):
        llb.scratch().file("mkdir /a")


def test_merge_drops_scratch_and_collapses():
    a = llb.scratch().file(llb.mkfile("/a", b"a"))
    b = llb.scratch().file(llb.mkfile("/b", b"b"))
    assert llb.merge([]).is_scratch and llb.merge([llb.scratch(), llb.scratch()]).is_scratch
    assert llb.merge([llb.scratch(), a, llb.scratch()]) is a
    m = llb.merge([llb.scratch(), a, b])
    assert m.op == ops.MergeOp((a.output, b.output))
    assert llb.merge([a.env("K", "v"), b]).get_env("K") == "v"
    with pytest.raises(llb.DefinitionError):
        llb.merge([a, "b"])


def test_diff():
    a = llb.scratch().file(llb.mkfile("/a", b"a"))
    b = a.file(llb.rm("/a"))
    d = llb.diff(a, b)
    assert d.op == ops.DiffOp((a.output, b.output))
    assert llb.diff(llb.scratch(), b).op.inputs[0] == llb.scratch().output
    with pytest.raises(llb.DefinitionError):
        llb.diff(a, None)


def test_metadata_lives_beside_ops_and_does_not_change_digests():
    plain = llb.scratch().file(llb.mkfile("/a", b"a"))
    named = llb.scratch().file(llb.mkfile("/a", b"a"), name="write a", description="why",
                               ignore_cache=True)
    assert plain.output == named.output
    d = named.to_definition()
    assert d.metadata[named.output.digest] == ops.OpMetadata("why", "write a", True)
    assert plain.to_definition().metadata == {}
    renamed = plain.with_name("n").with_description("d").ignore_cache()
    assert renamed.output == plain.output
    assert renamed.to_definition().metadata[plain.output.digest] == ops.OpMetadata("d", "n", True)
    ex = llb.image("busybox").run("true", ignore_cache=True, name="noop")
    assert ex.to_definition().metadata[ex.output.digest] == ops.OpMetadata("", "noop", True)


def test_states_are_immutable():
    s = llb.scratch()
    s.env("A", "1").cwd("/x")
    assert s.get_env("A") is None and s.get_cwd() == "/"
    with pytest.raises(AttributeError):
        s.foo = 1  # type: ignore[attr-defined]


def test_with_applies_functions():
    s = llb.scratch().with_(lambda st: st.env("A", "1"), lambda st: st.cwd("/w"))
    assert s.get_env("A") == "1" and s.get_cwd() == "/w"
    with pytest.raises(llb.DefinitionError):
        llb.scratch().with_(lambda st: 3)


def test_deep_chain_needs_no_recursion():
    s = llb.scratch()
    for i in range(3000):
        s = s.file(llb.mkfile(f"/f{i}", b""))
    d = s.to_definition()
    assert len(d.ops) == 3001 and llb.Definition.from_bytes(d.to_bytes()) == d
