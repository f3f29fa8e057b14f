"""The one errno policy of the toolkit: which failures a copy may step over, and why,
written once and named, instead of a list per copier (or a blanket `except OSError`).

Two kinds of tolerance. *Refusals* leave an attribute behind because the target or this
process cannot hold it (an xattr namespace the filesystem refuses, an owner a non-root
process cannot give): the entry is still written, as BuildKit's copier does. *Fallbacks*
take a slower way to the same result (a copy instead of a hardlink, read/write instead of
copy_file_range). Anything else is an error the caller reports."""

from __future__ import annotations

import errno
import os

# setxattr/listxattr/getxattr: the target cannot hold that attribute. EOPNOTSUPP (== ENOTSUP
# on Linux): the filesystem has no xattrs, or not this namespace. EPERM: the namespace
# needs a privilege this process lacks (trusted.*, security.* when not root) or the entry
# type refuses it (user.* on a symlink or a device node, even for root).
XATTR_REFUSED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM})

# getxattr of a name listxattr just returned: removed in between (not an error).
XATTR_GONE = frozenset({errno.ENODATA})

# link(2) cannot join these two names: another filesystem (EXDEV), the inode has too many
# links (EMLINK), fs.protected_hardlinks refuses a non-owner (EPERM). Copy instead.
LINK_FALLBACK = frozenset({errno.EXDEV, errno.EMLINK, errno.EPERM})

# copy_file_range(2) refuses this pair of files (across filesystems on older kernels, from an
# overlay mount, a filesystem without it): move the bytes with sendfile(2) instead.
COPY_RANGE_FALLBACK = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                 errno.EBADF})

# sendfile(2) refuses this pair: plain read/write.
SENDFILE_FALLBACK = frozenset({errno.EINVAL, errno.ENOSYS})


def xattr_refused(e: OSError) -> bool:
    """The target (or this process) cannot hold that xattr: skip it, keep the entry."""
    return e.errno in XATTR_REFUSED


def owner_refused(e: OSError) -> bool:
    """chown refused because this process is not root: the entry keeps our owner. As
    root a refusal is a real error (an immutable file, a read-only filesystem)."""
    return e.errno == errno.EPERM and os.geteuid() != 0


def setid_refused(e: OSError) -> bool:
    """chmod refused set-user/group-ID bits (not root, and not the owner: its chown was
    refused): the entry keeps the rest of its mode."""
    return e.errno == errno.EPERM and os.geteuid() != 0
