"""fsutil: the filesystem toolkit every room writes trees with (snapshots, merges, FileOp,
local sources, exporters, cache mounts, and layer tars). Depends only on the standard
library and llb.errors/llb.paths; knows nothing of snapshots or ops.

- walk(root): every entry below root, iterative at any depth, names sorted bytewise, a
  directory before its contents (and after them with leave=True), with dir fds for *at calls.
- copy_tree / remove_tree / disk_usage: whole trees, at any depth.
- copy_entry / copy_file / link_or_copy / try_link / make_node / lstat_or_none: one entry
  (holes, hardlinks, special files).
- Meta / apply_meta / copy_meta / set_times: an entry's owner, mode, xattrs and times.
- read_xattrs / write_xattrs / copy_xattrs: extended attributes.
- copy_data: a regular file's bytes between two descriptors.
- match / contains_wildcards / split_wildcards: Go's filepath.Match, as BuildKit uses it.
- policy: the one list of errors a copy may step over (refusals) or work around (fallbacks).
"""

from llb.fsutil.data import copy_data
from llb.fsutil.entry import (copy_entry, copy_file, link_or_copy, lstat_or_none, make_node,
                              try_link)
from llb.fsutil.errors import PATH_MAX, FsError, PathTooLongError
from llb.fsutil.match import contains_wildcards, match, split_wildcards
from llb.fsutil.meta import Creds, Meta, apply_meta, copy_meta, creds, set_times, umask
from llb.fsutil.tree import copy_tree, disk_usage, remove_tree
from llb.fsutil.walk import Entry, walk
from llb.fsutil.xattrs import copy_xattrs, read_xattrs, write_xattrs

__all__ = [
    "PATH_MAX", "Creds", "Entry", "FsError", "Meta", "PathTooLongError", "apply_meta",
    "contains_wildcards", "copy_data", "copy_entry", "copy_file", "copy_meta", "copy_tree",
    "copy_xattrs", "creds", "disk_usage", "link_or_copy", "lstat_or_none", "make_node",
    "match", "read_xattrs", "remove_tree", "set_times", "split_wildcards", "try_link",
    "umask", "walk", "write_xattrs",
]
