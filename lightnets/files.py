"""Writing files so that nothing is lost: atomic replaces with the user's umask, a set of files
replaced together, and a check that an output path can be written before any slow work starts."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename over `path`: readers see the old or the new file, whole.

    mkstemp creates its file 0600; the result gets the mode a plain open() would give (0666 less
    the umask), so run directories stay readable by the people the user shares them with.
    """
    tmp = _staged(Path(path), write)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _staged(path: Path, write) -> str:
    """A temporary file beside `path` that write(tmp_path) filled, synced, with the umask's mode;
    removed again when the write fails or is interrupted."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_together(writes: Mapping[str | os.PathLike, Callable[[str], None]]) -> None:
    """{path: write(tmp_path)}: every file written to a temporary beside its path, then all renamed
    into place, so that the files stay of one run (results.json and the charts drawn from it). A
    failure or Ctrl-C before the last write leaves every old file as it was; Ctrl-C during the
    renames is held back until they are done."""
    staged: dict[str, str] = {}
    try:
        for path, write in writes.items():
            staged[os.fspath(path)] = _staged(Path(path), write)
        with _sigint_held():
            for path, tmp in staged.items():
                os.replace(tmp, path)
    finally:
        for tmp in staged.values():  # those not renamed: the write failed or was interrupted
            Path(tmp).unlink(missing_ok=True)


@contextmanager
def _sigint_held():
    """Ctrl-C inside the block is delivered when it ends (in the main thread; elsewhere Python
    delivers no signals anyway)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # None: a handler not set from Python, which cannot be put back
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


def text_writer(text: str) -> Callable[[str], None]:
    """The write of `text` to a temporary path, for atomic_write and write_together."""
    return lambda tmp: Path(tmp).write_text(text)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, text_writer(text))


def check_writable(path: str | os.PathLike, flag: str = "path") -> None:
    """Fail before slow work when `path` cannot be written: by trying to (os.access says yes
    to root even on read-only mounts). Leaves an existing file untouched."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path}: is a directory")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{flag} {path}: directory {path.parent} does not exist")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        raise PermissionError(f"{flag} {path}: cannot write ({err.strerror})") from None
    if not existed:
        path.unlink()
