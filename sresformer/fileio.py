"""Safe files: atomic writes, output checks, run-directory locks and safe torch loading.

Every stage that writes goes through :func:`atomic_path`; every command checks its
outputs with :func:`check_output` before it starts work, so that no output can replace
one of its own inputs and a path that cannot be written is refused in one line up front.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import torch

from . import interrupt
from .errors import CheckpointError, OutputError

# temporaries are ".NAME.PID.RANDOM.tmp": the pid tells a later run whether the writer is gone
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` that writers killed outright (SIGKILL, power loss) left.

    Only files named as :func:`atomic_path` names them, whose writer process is gone.
    Returns what was removed.
    """
    path = Path(path)
    removed = []
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            m = _TMP.match(tmp.name)
            if m and m["name"] == path.name and not _alive(int(m["pid"])):
                with contextlib.suppress(OSError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def _os_reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the body succeeds.

    A crash, an exception, SIGINT or SIGTERM leaves no partial file behind (the temporary
    is removed), and readers never see a half-written ``path``. Of concurrent writers of one
    path, the last rename wins whole. Directory and permission problems are ``OutputError``.
    """
    path = Path(path)
    prefix = f".{path.name}.{os.getpid()}."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_os_reason(e)}") from None
    try:
        # a signal may land between mkstemp creating the file and the name reaching us, so
        # the cleanup below looks for this process's temporaries by their prefix, not by name
        try:
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {_os_reason(e)}") from None
        os.close(fd)
        yield Path(tmp)
        interrupt.check()   # a library may have swallowed the signal's exception: never publish then
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {_os_reason(e)}") from None
    except BaseException:
        for left in path.parent.glob(glob.escape(prefix) + "*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(left)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: through symlinks (resolve) and hard links (inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), option: str = "--out",
                 directory: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written or that would replace an input.

    ``out`` must not be one of ``inputs`` (symlinks and hard links resolved), must not be a
    directory (a file when ``directory``), and its nearest existing ancestor must be a
    directory in which a file can really be created (a probe, so read-only file systems
    and root alike are judged by what happens). Raises ``OutputError``; returns ``out``.
    """
    p = Path(out)
    for src in inputs:
        if src is not None and _same_file(p, Path(src)):
            raise OutputError(f"{option} {p} is the input {src}: it would be overwritten; "
                              f"write to another path")
    if directory:
        if p.exists() and not p.is_dir():
            raise OutputError(f"{option} {p} is a file; give a directory")
    elif p.is_dir():
        raise OutputError(f"{option} {p} is a directory; give a file path")
    parent = p if directory and p.is_dir() else p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {option} {p}: {parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".sresformer-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write {option} {p}: {parent} is not writable ({_os_reason(e)})") from None
    return p


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Hold an exclusive lock on directory ``path`` (created if missing) for the body.

    A second holder is refused at once with ``OutputError`` (no waiting): two runs into one
    directory would interleave their files. The lock is an ``flock`` on ``PATH/.lock``, so
    the kernel releases it when the process dies. A directory this call created and the
    body left empty is removed again, so bad input leaves nothing behind.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a directory")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise OutputError(f"cannot create {what} {path}: {_os_reason(e)}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise OutputError(f"{what} {path} is in use by another sresformer process; wait for it to end "
                                  f"or choose another directory") from None
            raise OutputError(f"cannot lock {what} {path}: {_os_reason(e)}") from None
        try:
            yield path
        finally:
            if created and [q.name for q in path.iterdir()] == [".lock"]:
                with contextlib.suppress(OSError):
                    (path / ".lock").unlink()
                    path.rmdir()
    finally:
        os.close(fd)


def torch_save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_path`, fsynced before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())


# magic numbers of the files users mistake for checkpoints, and the command that reads each
_HDF5 = b"\x89HDF\r\n\x1a\n"
_NPY = b"\x93NUMPY"
_ZIP = b"PK\x03\x04"


def _hdf5_kind(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            if fmt == "sresformer.loihi":
                return "a .loihi chip artifact (read by 'sresformer simulate' and 'sresformer energy')"
            if "node" in f:
                return "a NIR graph (read by 'sresformer eval', 'export' and 'simulate' as MODEL.nir)"
            if "layer" in f:
                return "a lava-dl netx network, not a checkpoint"
    except (OSError, ValueError):
        pass
    return "an HDF5 file, not a torch checkpoint"


def describe_foreign(path: Path) -> str | None:
    """What a file that is not a torch file is (from its first bytes), or None if it may be one."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_HDF5):
        return _hdf5_kind(path)
    if head.startswith(_NPY):
        return "a NumPy .npy array (as 'sresformer eval --save-logits' writes), not a checkpoint"
    if path.suffix == ".onnx" and not head.startswith(_ZIP):
        return "an ONNX model (run it with onnxruntime), not a checkpoint"
    return None


def torch_load_safe(path: str | os.PathLike, what: str = "checkpoint"):
    """``torch.load(weights_only=True)`` on CPU; any unreadable file becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty")
    try:
        foreign = describe_foreign(path)
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {_os_reason(e)}") from None
    if foreign is not None:
        raise CheckpointError(f"{path} is {foreign}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{what} {path} holds Python objects other than tensors and plain containers; "
                              f"sresformer never unpickles code: save its state dict with torch.save and "
                              f"import that") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            AttributeError, TypeError, IndexError, MemoryError) as e:
        raise CheckpointError(f"{what} {path} is truncated or not a torch file "
                              f"({type(e).__name__})") from None
