"""What made each output frame, so re-runs resume and `status` can spot stale frames.

One small JSON record per frame in ``<output dir>/.bake-seq/<frame file name>.json``: one file
per frame (not one shared log) so farm tasks writing different frames of the same shot never
contend. The record is written after the frame is renamed into place, so a frame without a
matching record is treated as incomplete and rendered again. While a render works on a frame it
holds ``<frame file name>.lock`` there, a lease it keeps refreshing (claim_frame).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import threading
import time
from dataclasses import dataclass

from .datafile import DataFileError, open_regular, read_json
from .safe_write import HOST as _HOST
from .safe_write import NO_HARD_LINKS
from .safe_write import alive as _alive

RECORD_DIR = ".bake-seq"


def record_path(frame_path: str) -> str:
    folder, name = os.path.split(frame_path)
    return os.path.join(folder, RECORD_DIR, name + ".json")


def file_identity(path: str) -> dict:
    """Size, mtime and a BLAKE2b hash of the whole file: a frame rewritten with the same size and
    an old mtime is still seen as changed (hashing a 12 MB 2K DPX takes ~10 ms, README). A FIFO
    or device (never opened to wait on it), or a file gone meanwhile, matches no record."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open_regular(path, 1 << 62) as fh:
            st = os.fstat(fh.fileno())
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (DataFileError, OSError):
        return {"size": -1, "mtime_ns": -1, "blake2b": "not a readable regular file"}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest.hexdigest()}


def same_file(recorded, now: dict) -> bool:
    """By content when the record has a hash (a `touch` changes nothing), else by size and mtime
    (records written before hashes)."""
    if not isinstance(recorded, dict) or now["size"] < 0:
        return False
    if "blake2b" in recorded:
        return recorded.get("size") == now["size"] and recorded["blake2b"] == now["blake2b"]
    return recorded.get("size") == now["size"] and recorded.get("mtime_ns") == now["mtime_ns"]


def write_record(frame_path: str, record: dict) -> None:
    """Write the record atomically; a failed write (disk full, read-only .bake-seq/) leaves no
    temp file and is an OutputError (exit 10, retryable): the frame renders again next time."""

    from .safe_write import write_file

    body = {**record, "output": file_identity(frame_path)}
    path = record_path(frame_path)
    try:  # a record that is no regular file (a FIFO, a link) is no record: ours to replace
        if not stat.S_ISREG(os.lstat(path).st_mode) and not stat.S_ISDIR(os.lstat(path).st_mode):
            os.remove(path)
    except OSError:
        pass
    write_file(path, json.dumps(body, indent=1, sort_keys=True), overwrite=True,
               what="resume record", fix="free disk space or make the output's .bake-seq folder writable, then run again")


LOCK_LEASE_S = 120.0  # a lock not refreshed for this long is stale, whatever host wrote it


def lock_lease_s() -> float:
    """The lease; BAKE_SEQ_LOCK_LEASE_S sets another (tests shorten it). Hosts sharing a folder need clocks
    within a lease of each other (a lock's mtime is compared with the reader's clock)."""
    try:
        lease = float(os.environ.get("BAKE_SEQ_LOCK_LEASE_S", LOCK_LEASE_S))
    except ValueError:
        return LOCK_LEASE_S
    return lease if 0 < lease < float("inf") else LOCK_LEASE_S


def lock_path(frame_path: str) -> str:
    folder, name = os.path.split(frame_path)
    return os.path.join(folder, RECORD_DIR, name + ".lock")


# The locks this process holds (lock path -> open fd of the lock file), touched by one background
# thread a few times per lease: a render that dies stops touching, so within one lease its frames
# go back to the others. The fd keeps us touching our own lock even if it was moved meanwhile.
_held: dict[str, int] = {}
_held_guard = threading.Lock()
_unique = itertools.count()
_refresher: threading.Thread | None = None
_claimed = threading.Event()  # wakes the refresher: a new lock is touched, a changed lease applies


def _keep_leases() -> None:
    while True:
        _claimed.wait(lock_lease_s() / 5)
        _claimed.clear()
        with _held_guard:
            for fd in _held.values():
                try:
                    os.utime(fd)
                except OSError:
                    pass


def claim_frame(frame_path: str) -> bool:
    """Take the frame for this process (a lock file beside its record, kept fresh until
    release_frame): renders and farm tasks writing into one folder share the frames instead of
    each rendering all of them. A stale lock (_is_stale) is taken over. False: another render
    holds the frame and its lease has not run out."""
    global _refresher
    from .errors import OutputError

    path = lock_path(frame_path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for _ in range(3):  # a lock released or taken over while we looked: look again
            fd = _create_lock(path)
            if fd is not None:
                with _held_guard:
                    _held[path] = fd
                    if _refresher is None:
                        _refresher = threading.Thread(target=_keep_leases, name="bake-locks", daemon=True)
                        _refresher.start()
                _claimed.set()
                return True
            try:
                seen = os.lstat(path)
            except FileNotFoundError:
                continue
            if not _is_stale(path, seen) or not _take_over(path, seen):
                return False
    except OSError as exc:
        raise OutputError(path, f"cannot make the frame's lock file ({exc.strerror or exc})",
                          "make the output's .bake-seq folder writable (and a folder), then run again") from None
    return False


def _create_lock(path: str) -> int | None:
    """The lock appears with its content in one step (a complete temp file hard-linked to the
    lock name, which fails if the name exists): no render ever reads a half-written lock and
    judges it stale. Returns the lock's fd, or None when the name exists."""
    content = f"{_HOST} {os.getpid()}\n".encode()
    temp = f"{path}.new-{_HOST}-{os.getpid()}-{next(_unique)}"
    fd = os.open(temp, os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_RDWR, 0o644)  # our name only
    try:
        os.write(fd, content)
        os.link(temp, path)
        return fd
    except FileExistsError:
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        if exc.errno not in NO_HARD_LINKS:
            raise
    finally:
        _remove_any(temp)
    # a file system without hard links (some SMB mounts): create in place; a render that reads
    # it half-written sees a malformed lock, which only the lease ends
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    except FileExistsError:
        return None
    os.write(fd, content)
    return fd


def _is_stale(path: str, seen: os.stat_result) -> bool:
    """Not refreshed for a lease (or dated more than a lease ahead: a wrong clock) is stale, for
    any lock: another host's, an unreadable or malformed one, a directory or FIFO, a live pid that
    is no render. Only a lock naming a dead process of this host is stale at once."""
    with _held_guard:
        if path in _held and os.path.samestat(os.fstat(_held[path]), seen):
            return False  # ours (another render in this process holds the frame)
    lease, age = lock_lease_s(), time.time() - seen.st_mtime
    if not -lease <= age <= lease:
        return True
    owner = _lock_owner(path, seen)
    if owner is None or owner[0] != _HOST:
        return False
    # our own pid on a lock we do not hold: left by an earlier process that had our pid
    return owner[1] == os.getpid() or not _alive(owner[1])


def _lock_owner(path: str, seen: os.stat_result) -> tuple[str, int] | None:
    """(host, pid) from a regular lock file, else None. Never opens a FIFO for reading (no hang):
    non-blocking, no symlinks, and the opened file must be the regular file we looked at."""
    if not stat.S_ISREG(seen.st_mode):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if not (stat.S_ISREG(opened.st_mode) and os.path.samestat(opened, seen)):
            return None
        fields = os.read(fd, 200).decode("ascii", "replace").split()
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(fields) < 2 or not (fields[1].isascii() and fields[1].isdigit() and len(fields[1]) <= 10):
        return None  # "hello world", "vm -5", a 23-digit pid: malformed, the lease decides
    pid = int(fields[1])
    return (fields[0], pid) if 0 < pid < 2**31 else None


def _take_over(path: str, judged: os.stat_result) -> bool:
    """Move the stale lock aside under a name only we use, and keep it gone only if it is the one
    we judged (same file, not touched since): of two renders that judged it, one moves it and the
    other finds it gone or finds the winner's fresh lock, which it puts back."""
    aside = f"{path}.stale-{_HOST}-{os.getpid()}-{next(_unique)}"
    try:
        os.rename(path, aside)
    except OSError:
        return False
    try:
        moved = os.lstat(aside)
        if not (os.path.samestat(moved, judged) and moved.st_mtime_ns == judged.st_mtime_ns):
            os.link(aside, path)  # never over a lock made meanwhile (the moved lock's owner then
            return False          # loses it; this needs a third render within microseconds)
    except OSError:
        return False
    finally:
        _remove_any(aside)
    return True


def _remove_any(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        try:
            os.rmdir(path)
        except OSError:
            pass  # a lock that is a folder with files in it stays, moved aside, for a person


def release_frame(frame_path: str) -> None:
    """Give the frame back: remove its lock only if it is still ours (not taken over while this
    process was stalled for longer than a lease)."""
    path = lock_path(frame_path)
    with _held_guard:
        fd = _held.pop(path, None)
    if fd is None:
        return
    try:
        if os.path.samestat(os.fstat(fd), os.lstat(path)):
            os.remove(path)
    except OSError:
        pass
    finally:
        os.close(fd)


MAX_RECORD_BYTES = 1 << 20  # a record is ~1 KB; anything this big was not written by bake-seq

# What write_record writes, field by field: a record that differs is no record (the frame renders
# again, and `status` calls it unrecorded), never a KeyError or a string taken for a mapping.
_RECORD_FIELDS = {"fingerprint": str, "frame": int, "source": dict, "output": dict, "settings": dict}


def read_record(frame_path: str) -> dict | None:
    try:
        record = read_json(record_path(frame_path), MAX_RECORD_BYTES)
    except DataFileError:
        return None
    if not isinstance(record, dict) or not all(type(record.get(key)) is kind for key, kind in _RECORD_FIELDS.items()):
        return None
    if not isinstance(record.get("operator"), (dict, type(None))):
        return None
    return record


@dataclass(frozen=True)
class FrameState:
    state: str  # "done", "missing", "stale" or "unrecorded"
    reason: str


def frame_state(frame_path: str, fingerprint: str, source_path: str | None = None) -> FrameState:
    """Is ``frame_path`` a complete frame made by ``fingerprint`` from the current source?"""
    if not os.path.exists(frame_path):
        return FrameState("missing", "no output file")
    record = read_record(frame_path)
    if record is None:
        return FrameState("unrecorded", "output exists but no bake-seq record (interrupted or foreign)")
    if not same_file(record.get("output"), file_identity(frame_path)):
        return FrameState("stale", "output file changed after bake-seq wrote it")
    if record.get("fingerprint") != fingerprint:
        return FrameState("stale", "made with another checkpoint or settings")
    if source_path is not None and os.path.exists(source_path):
        if not same_file(record.get("source"), file_identity(source_path)):
            return FrameState("stale", "source frame changed since it was rendered")
    return FrameState("done", "complete")
