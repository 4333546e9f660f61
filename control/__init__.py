"""A reference coordination service for tailnet lock (docs/control.md) over SQLite."""
