"""Authority storage backends (docs/format.md §8, §8)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verifier.storage.base import Storage, StoredRecord
    from verifier.storage.filesystem import FilesystemStorage
    from verifier.storage.memory import MemoryStorage
    from verifier.storage.sqlite import SQLiteStorage

# Imported on first use (PEP 562), so that a node on the filesystem does not load sqlite3.
_EXPORTS: dict[str, str] = {
    "Storage": "verifier.storage.base",
    "StoredRecord": "verifier.storage.base",
    "FilesystemStorage": "verifier.storage.filesystem",
    "MemoryStorage": "verifier.storage.memory",
    "SQLiteStorage": "verifier.storage.sqlite",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:  # not ours: `from verifier.storage import atomic` imports the submodule
        raise AttributeError(f"module 'verifier.storage' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

__all__ = ["FilesystemStorage", "MemoryStorage", "SQLiteStorage", "Storage", "StoredRecord"]
