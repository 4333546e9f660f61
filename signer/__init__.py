"""Everything that signs, and the `tka` command line."""
