"""Helpers to write definition bytes by hand, valid or deliberately not."""

import hashlib

import msgpack

from llb.codec import to_wire
from llb.ops import SourceOp

SCRATCH = to_wire(SourceOp("scratch"))


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def inp(d: str, index: int = 0) -> dict:
    return {"digest": d, "index": index}


def file_op(base: str, *actions: dict, inputs=None) -> dict:
    return {"actions": list(actions) or [mkdir("/a")], "inputs": inputs or [inp(base)],
            "kind": "file"}


def mkdir(path="/a", mode=0o755, parents=False, owner="", created=-1) -> dict:
    return {"action": "mkdir", "created": created, "mode": mode, "owner": owner,
            "parents": parents, "path": path}


def exec_op(base: str, mounts=None, **over) -> dict:
    op = {"args": ["true"], "cwd": "/", "env": [], "hostname": "", "inputs": [inp(base)],
          "kind": "exec",
          "mounts": [mount("/", input=0, output=0)] if mounts is None else mounts,
          "network": "none", "user": ""}
    op.update(over)
    return op


def mount(dest, input=-1, output=-1, type="bind", **over) -> dict:  # noqa: A002
    m = {"cache_id": "", "dest": dest, "input": input, "output": output, "readonly": False,
         "selector": "", "sharing": "shared", "tmpfs_size": 0, "type": type}
    m.update(over)
    return m


def definition(*ops, output=None, metadata=None, version=1, blobs=None, digests=None) -> bytes:
    """Bytes of a definition of `ops` (wire dicts, or raw bytes), in the order given; the
    output defaults to the last op."""
    blobs = blobs or [op if isinstance(op, bytes) else pack(op) for op in ops]
    digests = digests or [digest(b) for b in blobs]
    top = {"metadata": metadata or {}, "ops": [[d, b] for d, b in zip(digests, blobs)],
           "output": output if output is not None else inp(digests[-1]), "version": version}
    return pack(top)


def scratch_digest() -> str:
    return digest(pack(SCRATCH))
