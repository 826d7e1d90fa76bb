"""Refuse to write a results store on a network file system, where SQLite's locking cannot be trusted.

SQLite's WAL mode needs shared memory between the processes using a database, which processes on different hosts
of an NFS/SMB/Lustre/... mount do not have, and the POSIX locks SQLite relies on are advisory or broken on many
network file systems: two writers can both "hold" the lock and corrupt ``results.sqlite`` (see
https://www.sqlite.org/faq.html#q5 and https://www.sqlite.org/wal.html). So a store is detected on opening: the
store folder is matched against the mount table (``/proc/mounts``, longest mount-point prefix of the resolved path)
and a writable store on a network file system is refused, with the ways out:

* put the store on a local disk; or
* run shards (``medrival run STUDY.yaml --shard i/N --out LOCAL_DIR``) into local stores and combine them onto the
  shared file system with ``medrival merge STORE... --out SHARED_DIR`` (one writer, so safe there); or
* set ``MEDRIVAL_ALLOW_NETWORK_STORE=1``: the **network safe mode**. The store is opened with
  ``journal_mode=DELETE`` (a rollback journal beside the database, no shared memory) and the caller promises a
  **single writer**: one process at a time writes the store, and no reader runs on another host while it does.
  Leases (``ResultStore.claim``) cannot make several writers safe there, since they rely on the same locks.

Reading a store on a network file system (``report``, ``compare``, ``export``, ``verify``) is allowed: readers open
it read-only and never change its journal mode.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTS_FILE = "/proc/mounts"  # a module constant so tests can point it at a fake mount table
ALLOW_ENV = "MEDRIVAL_ALLOW_NETWORK_STORE"
NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "lustre", "gpfs", "beegfs", "9p",
    "ceph", "glusterfs", "sshfs", "davfs", "ocfs2", "gfs2", "panfs", "pvfs2", "orangefs", "wekafs", "quobyte",
})
# FUSE file systems are named "fuse.<program>": these programs reach a server over the network.
NETWORK_FUSE = frozenset({"sshfs", "glusterfs", "ceph", "cephfs", "ceph-fuse", "s3fs", "gcsfuse", "rclone",
                          "juicefs", "davfs", "davfs2", "goofys", "blobfuse", "blobfuse2", "lizardfs", "moosefs",
                          "mfs", "seaweedfs", "cvmfs"})
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str


def is_network_fstype(fstype: str) -> bool:
    kind = fstype.lower()
    if kind.startswith("fuse."):
        return kind[5:] in NETWORK_FUSE or kind[5:] in NETWORK_FSTYPES
    return kind in NETWORK_FSTYPES


def _mounts() -> list[Mount]:
    """The mount table; [] where there is none (not Linux) or it cannot be read: nothing can be detected then."""
    try:
        text = Path(MOUNTS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:  # the kernel writes a space in a mount point as \040
            mounts.append(Mount(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[1]), fields[2]))
    return mounts


def mount_of(path: str | Path) -> Mount | None:
    """The mount holding ``path`` (longest mount-point prefix of its resolved form; the last of equal ones, as
    a later mount hides an earlier one on the same point), or None when the table is unavailable."""
    resolved = str(Path(path).resolve())
    best: Mount | None = None
    for mount in _mounts():
        point = mount.mount_point.rstrip("/") or "/"
        inside = resolved == point or resolved.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = Mount(point, mount.fstype)
    return best


def network_mount(path: str | Path) -> Mount | None:
    """The network mount holding ``path``, or None when it is on a local file system (or nothing is known)."""
    mount = mount_of(path)
    return mount if mount is not None and is_network_fstype(mount.fstype) else None


def network_allowed() -> bool:
    """Whether the user opted into the network safe mode (``MEDRIVAL_ALLOW_NETWORK_STORE=1``)."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def refusal(root: Path, mount: Mount) -> str:
    """What was found, why it is refused, and the three ways out."""
    return (f"The results store {str(root)!r} is on a network file system ({mount.fstype} mounted at "
            f"{mount.mount_point!r}). SQLite's write-ahead log and file locks are not safe there: concurrent "
            f"writers can corrupt results.sqlite. Use a store on a local disk (e.g. --out /tmp/my-study), or run "
            f"shards into local stores (`medrival run STUDY.yaml --shard i/N --out LOCAL_DIR`) and combine them "
            f"onto the shared file system with `medrival merge LOCAL_DIR... --out {root}`. If one process at a time "
            f"writes this store, set {ALLOW_ENV}=1 to open it in the network safe mode (journal_mode=DELETE, single "
            f"writer).")
