"""A reference coordination service for tailnet lock (spec §13) over SQLite."""
