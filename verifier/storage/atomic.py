"""Atomic replacement of a file: a temporary file beside it, fsync, chmod, rename, fsync of the
directory. A crash at any point leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from verifier.errors import StorageError


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    import secrets  # here, not at start-up: it loads `random` (a read-only command writes none)

    directory = path.parent
    tmp = directory / f"{path.name}.tmp{secrets.token_hex(6)}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)  # after writing: the umask may have narrowed O_CREAT's mode
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror}") from None


def atomic_create(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` with `data`, never replacing an existing file: written under a temporary
    name created with `mode` (so never wider, whatever the umask), fsync-ed, then linked into
    place, which fails if the name exists. After a crash the file is whole or absent."""
    import secrets

    directory = path.parent
    tmp = directory / f".{path.name}.tmp{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except FileExistsError:
        raise StorageError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror}") from None


def make_private_dirs(path: Path) -> None:
    """Create `path` and every missing parent with mode 0700 (created so: `mkdir` with the mode,
    which a umask can only narrow). Existing directories are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    try:
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):  # made meanwhile by a concurrent run
                os.mkdir(directory, 0o700)
    except OSError as err:
        raise StorageError(f"cannot create {path}: {err.strerror}") from None
    if not path.is_dir():
        raise StorageError(f"{path} is not a directory")
