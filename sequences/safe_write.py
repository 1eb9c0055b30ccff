"""One writer for every file bake-seq writes: frames' records, LUTs, checkpoints, exported
models, job bundles, settings, reports, contact sheets, training runs.

    check_target    refuses, before any work: a target that IS one of the command's inputs
                    (by file identity: a symlink or hard link to an input is that input, with
                    or without --overwrite), an existing file without --overwrite, anything
                    that is not a regular file (a device such as /dev/full, a FIFO, a folder),
                    and a path that goes through a file. UnsafeTargetError: exit 6.
    write_file      writes the whole content to a new temp file beside the target (O_EXCL, so
                    two writers never share one), fsyncs it, then links it into place (renames
                    with --overwrite): nothing half-written ever sits under the final name, and
                    without --overwrite a file that appeared meanwhile is never replaced. Every
                    OS failure (full disk, read-only mount, /sys, permissions) is one OutputError
                    line (exit 10, retryable); no temp file is left behind on any path.

Libraries that write files themselves fail badly on a full disk (libtorch aborts the process
with a C++ stack trace; safetensors raises its own error type), so callers serialise such
content to bytes first (torch.jit.save / onnx into a BytesIO, safetensors' ``save``) and hand
the bytes here: memory is then the file's size, a few MB for every model bake-seq writes.
Only writers that must have a path (OpenImageIO, matplotlib) get the temp path to fill.
"""
from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
from typing import Callable, Iterable, Union

from .errors import OutputError, UnsafeTargetError

Content = Union[bytes, str, Callable[[str], None]]  # bytes, UTF-8 text, or fill(temp_path)
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})  # some SMB mounts link nothing
HOST = socket.gethostname().replace(os.sep, "_").replace(".", "_") or "host"
_swept: set[str] = set()  # folders whose stale temps this process has removed


def identities(paths: Iterable) -> frozenset:
    """(device, inode) of each path that exists, links followed: what 'the same file' means.
    Through realpath, so ``new/../plate.exr`` is plate.exr even before ``new`` exists (a writer
    creates missing folders, and then the kernel would resolve it to plate.exr too)."""
    found = set()
    for path in paths:
        try:
            st = os.stat(os.path.realpath(path))
        except (OSError, ValueError):
            continue
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def check_target(path, *, inputs: Iterable = (), overwrite: bool = False, what: str = "output",
                 fix: str = "choose another -o") -> str:
    """The absolute target path if writing there is safe (module docstring), else UnsafeTargetError."""
    text = os.fspath(path)
    if not text.strip():
        raise UnsafeTargetError(repr(text), f"is not a file name for the {what}", fix)
    target = os.path.abspath(text)
    _check_folders(text, target, what, fix)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None  # nothing there, or a dangling link: publishing never follows it
    except OSError as exc:
        raise UnsafeTargetError(text, f"cannot be looked at ({exc.strerror or exc})", fix) from None
    if st is not None:
        if (st.st_dev, st.st_ino) in identities(inputs):
            raise UnsafeTargetError(text, f"is an input of this command; writing the {what} there would destroy it",
                                    f"{fix} (inputs are never overwritten, not even with --overwrite)")
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, FIFO or socket"
            raise UnsafeTargetError(text, f"is {kind}, not a file the {what} can go to", fix)
    if (st is not None or os.path.lexists(target)) and not overwrite:
        raise UnsafeTargetError(text, "already exists", f"{fix} or pass --overwrite")
    return target


def _check_folders(text: str, target: str, what: str, fix: str) -> None:
    """The nearest folder that exists on the way to ``target`` is a folder and takes a new file:
    a read-only mount or /sys is one line now, not after minutes of work (a full disk shows only
    when the content is written: an empty probe file still fits)."""
    folder = os.path.dirname(target)
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise UnsafeTargetError(text, f"goes through {folder}, which is a file, not a folder", fix)
    probe = temp_name(os.path.join(folder, "write-test"))
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as exc:
        _remove(probe)
        raise OutputError(text, f"cannot write the {what} in {folder} ({exc.strerror or exc})",
                          "check the folder is writable (not a read-only mount) and has free space") from None


def write_file(path, content: Content, *, inputs: Iterable = (), overwrite: bool = False,
               what: str = "file", fix: str = "choose another -o", executable: bool = False) -> str:
    """Write ``content`` to ``path`` safely (module docstring); the absolute path written."""
    target = check_target(path, inputs=inputs, overwrite=overwrite, what=what, fix=fix)
    place_files([(target, content)], overwrite=overwrite, what=what, fix=fix, executable=executable)
    return target


def write_files(files: list, *, inputs: Iterable = (), overwrite: bool = False, what: str = "file",
                fix: str = "choose another -o") -> list[str]:
    """Several files that belong together (a LUT and its sidecar): every target checked first,
    all written to temps, then placed in the order given; when one cannot be placed, the ones
    this call placed are removed again (without --overwrite nothing was there before)."""
    inputs = list(inputs)
    targets = [check_target(p, inputs=inputs, overwrite=overwrite, what=what, fix=fix) for p, _ in files]
    place_files([(t, c) for t, (_, c) in zip(targets, files)], overwrite=overwrite, what=what, fix=fix)
    return targets


def place_files(files: list, *, overwrite: bool, what: str, fix: str, executable: bool = False) -> None:
    temps, placed, path = [], [], files[0][0]
    try:
        for path, content in files:
            temps.append(_write_temp(path, content, executable))
        for (path, _), temp in zip(files, temps):
            if not publish(temp, path, overwrite):
                raise UnsafeTargetError(path, f"appeared while the {what} was being written (it was not replaced)",
                                        f"{fix} or pass --overwrite")
            placed.append((path, os.lstat(path)))
        for folder in {os.path.dirname(p) for p, _ in files}:
            fsync_folder(folder)
    except BaseException as exc:
        if not overwrite:
            _unplace(placed)
        if isinstance(exc, OSError):
            raise OutputError(path, f"cannot write the {what} ({exc.strerror or exc})",
                              "check the folder exists, is writable and has free space") from None
        raise
    finally:
        for temp in temps:
            _remove(temp)


def temp_name(target: str) -> str:
    """A hidden, unique name beside ``target`` that keeps its extension (OpenImageIO and
    matplotlib pick the format from it) and names its host and process, so the temps of a run
    that was killed (SIGKILL, out of memory) can be told from those of live writers."""
    folder, name = os.path.split(target)
    ext = os.path.splitext(name)[1]
    return os.path.join(folder, f".{name}.partial-{HOST}-{os.getpid()}-{secrets.token_hex(4)}{ext}")


def remove_stale_temps(folder: str) -> None:
    """Temps left in ``folder`` by a killed writer on this host (its process is gone). Those of
    live processes, or of other hosts on shared storage, are left alone: they may be mid-write.
    Once per folder per process: listing a folder of 50,000 frames for every frame would make
    each write O(frames)."""
    if folder in _swept:
        return
    _swept.add(folder)
    marker = f".partial-{HOST}-"
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.startswith(".") and marker in e.name]
    except OSError:
        return
    for name in names:
        pid = name.split(marker, 1)[1].split("-", 1)[0].split(".", 1)[0]
        if pid.isascii() and pid.isdigit() and not alive(int(pid)):
            _remove(os.path.join(folder, name))


def alive(pid: int) -> bool:
    """Never raises: a pid that cannot exist (0, negative, beyond pid_t) is no live process."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _write_temp(target: str, content: Content, executable: bool) -> str:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    remove_stale_temps(os.path.dirname(target))
    temp = temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777 if executable else 0o666)
    try:
        if callable(content):
            os.close(fd)
            fd = -1
            content(temp)
            fd = os.open(temp, os.O_RDONLY)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            view = memoryview(data)
            while view:  # os.write may write less than asked (pipes, signals, network mounts)
                view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        _remove(temp)
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    return temp


def publish(temp: str, target: str, replace: bool) -> bool:
    """Move ``temp`` to ``target``; without ``replace`` only where nothing is (a hard link fails
    on an existing name, so a file another process wrote meanwhile is never replaced). False when
    ``target`` exists (``temp`` is then left for the caller)."""
    if replace:
        os.replace(temp, target)
        return True
    try:
        os.link(temp, target)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(target):  # no hard links here: checked, then renamed (a small window)
            return False
        os.rename(temp, target)
        return True
    os.remove(temp)
    return True


def _unplace(placed: list) -> None:
    for done, seen in placed:
        try:
            if os.path.samestat(os.lstat(done), seen):
                os.remove(done)
        except OSError:
            pass  # gone or replaced meanwhile: not ours to remove any more


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def fsync_folder(folder: str) -> None:
    """Makes the rename durable; some filesystems (and all of Windows) refuse to fsync a folder,
    and by then the file is in place anyway."""
    try:
        descriptor = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
