# The README's two commands: `make example` and `make test`. Each installs what is
# missing (system packages through apt-get, Python packages into .venv) and then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# System packages the features need: runc runs Exec ops, busybox-static is the base root
# the examples and tests build from scratch; docker-registry is the real registry the image
# tests push to and pull from (on 127.0.0.1), skopeo and umoci independently read what llb
# pushes and writes; e2fsprogs makes the small ext4 filesystems the full-disk tests mount.
SYS_PKGS := runc busybox-static e2fsprogs docker-registry skopeo umoci
# What `make bench` adds: gcc builds the C loop that measures the file-creation floor, GNU
# time measures peak memory, valgrind (callgrind) counts a cached solve's instructions.
BENCH_PKGS := gcc time valgrind
EXAMPLE ?= examples/merge/build.py
# the merge example's `run` target runs the app on the merged root (a real exec)
EXAMPLE_TARGET ?= run

.PHONY: all deps sysdeps venv example test bench clean proto torture

all: test

deps: sysdeps venv

sysdeps:
	@missing=""; for p in $(SYS_PKGS) $(EXTRA_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

# editable_mode=compat puts the checkout on sys.path through a plain .pth line; setuptools'
# default editable finder costs every `llb` command ~18 ms of start-up (it imports pathlib,
# urllib and ipaddress before llb runs), which the start-up figures in bench/ would count.

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# (PYTHONWARNINGS: compat mode makes setuptools print a long notice that it is transitional)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

example: deps
	rm -rf out/example
	$(VENV)/bin/llb solve $(EXAMPLE) $(if $(EXAMPLE_TARGET),--target $(EXAMPLE_TARGET)) \
		--local busybox=/bin --output type=local,dest=out/example
	@echo "result in out/example (bin/ holds busybox and its applet links):" && \
		find out/example -not -path 'out/example/bin/*' | sort | head -50
	@if [ -f out/example/app/MANIFEST ]; then \
		echo "out/example/app/MANIFEST (written by an exec on the merged root):"; \
		cat out/example/app/MANIFEST; fi

# mypy first: the package code (every room, through llb/'s symlinks) type-checks clean
test: deps
	$(PY) -m mypy -p llb
	$(PY) -m pytest -n 2 -q tests

# The fault-injection suite alone, many rounds (`make test` runs it too, one round each):
# builds and prunes stopped by SIGKILL/SIGTERM/SIGHUP/SIGINT at random points, a disk that
# fills up (loop-mounted ext4), deep, wide and non-UTF-8 trees; LLB_TORTURE_SEED replays a run.
TORTURE_ROUNDS ?= 10
torture: deps
	LLB_TORTURE_ROUNDS=$(TORTURE_ROUNDS) $(PY) -m pytest -n 2 -q tests/torture

bench: EXTRA_PKGS = $(BENCH_PKGS)
bench: deps
	$(PY) bench/run.py

# llb/pb/ops_pb2.py (+ .pyi) are generated from llb/pb/ops.proto and committed; regenerate
# them after changing the .proto. grpcio-tools carries protoc; its major must match the
# protobuf runtime pinned in pyproject.toml (tests/buildkit/test_proto_generated.py checks).
proto: venv
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. llb/pb/ops.proto

clean:
	rm -rf $(VENV) out .pytest_cache
