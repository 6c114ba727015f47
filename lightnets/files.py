"""Writing files so that nothing is lost: atomic replaces with the user's umask, and a check that
an output path can be written before any slow work starts."""

from __future__ import annotations

import os
import tempfile
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
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


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
