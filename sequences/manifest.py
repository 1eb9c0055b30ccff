"""What made each output frame, so re-runs resume and `status` can spot stale frames.

One small JSON record per frame in ``<output dir>/.bake-seq/<frame file name>.json``: one file
per frame (not one shared log) so farm tasks writing different frames of the same shot never
contend. The record is written after the frame is renamed into place, so a frame without a
matching record is treated as incomplete and rendered again.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

RECORD_DIR = ".bake-seq"


def record_path(frame_path: str) -> str:
    folder, name = os.path.split(frame_path)
    return os.path.join(folder, RECORD_DIR, name + ".json")


def file_identity(path: str) -> dict:
    """Size, mtime and a BLAKE2b hash of the whole file: a frame rewritten with the same size and
    an old mtime is still seen as changed (hashing a 12 MB 2K DPX takes ~10 ms, README)."""
    st = os.stat(path)
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest.hexdigest()}


def same_file(recorded, now: dict) -> bool:
    """By content when the record has a hash (a `touch` changes nothing), else by size and mtime
    (records written before hashes)."""
    if not isinstance(recorded, dict):
        return False
    if "blake2b" in recorded:
        return recorded.get("size") == now["size"] and recorded["blake2b"] == now["blake2b"]
    return recorded.get("size") == now["size"] and recorded.get("mtime_ns") == now["mtime_ns"]


def write_record(frame_path: str, record: dict) -> None:
    """Write the record atomically; a failed write (disk full, read-only .bake-seq/) leaves no
    temp file and is an OutputError (exit 10, retryable): the frame renders again next time."""
    from .errors import OutputError

    path = record_path(frame_path)
    body = {**record, "output": file_identity(frame_path)}
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise OutputError(path, f"cannot write the resume record ({exc.strerror or exc})",
                          "free disk space or make the output's .bake-seq folder writable, then run again") from None


LOCK_STALE_S = 3600  # a lock from another host older than this is taken over (its render died)


def lock_path(frame_path: str) -> str:
    folder, name = os.path.split(frame_path)
    return os.path.join(folder, RECORD_DIR, name + ".lock")


def claim_frame(frame_path: str) -> bool:
    """Take the frame for this process (an O_EXCL lock file beside its record): renders and farm
    tasks writing into one folder share the frames instead of each rendering all of them. A lock
    whose process is gone (this host), or older than LOCK_STALE_S (another host), is taken over."""
    from .plate import _HOST, _alive

    path = lock_path(frame_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for attempt in (0, 1):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if attempt == 0 and _lock_is_stale(path, _HOST, _alive):
                release_frame(frame_path)
                continue
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{_HOST} {os.getpid()}\n")
        return True
    return False


def _lock_is_stale(path: str, host: str, alive) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            owner_host, owner_pid = fh.read(200).split()[:2]
        age = time.time() - os.stat(path).st_mtime
    except (OSError, ValueError):  # vanished, or half-written by a process that died at once
        return True
    if owner_host == host and owner_pid.isdigit():
        # our own pid can only be a leftover (locks are released after each frame)
        return int(owner_pid) == os.getpid() or not alive(int(owner_pid))
    return age > LOCK_STALE_S


def release_frame(frame_path: str) -> None:
    try:
        os.remove(lock_path(frame_path))
    except OSError:
        pass


def read_record(frame_path: str) -> dict | None:
    try:
        with open(record_path(frame_path), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None  # a list or a number is no record: re-render


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
