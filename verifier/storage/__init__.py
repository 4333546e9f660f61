"""Authority storage backends (spec §8.2, §8.9, §8.10)."""

from verifier.storage.base import Storage, StoredRecord
from verifier.storage.filesystem import FilesystemStorage
from verifier.storage.memory import MemoryStorage
from verifier.storage.sqlite import SQLiteStorage

__all__ = ["FilesystemStorage", "MemoryStorage", "SQLiteStorage", "Storage", "StoredRecord"]
