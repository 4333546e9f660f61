"""Writes one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(title: str, body: str) -> None:
    """Replace the section headed exactly `title` (a `## …` line) with `title` + `body`, or
    append it; the section ends where the next `## ` heading starts."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    section = f"{title}\n\n{body.rstrip()}\n"
    start = text.find(title + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(title))
        text = text[:start] + section + ("" if nxt == -1 else "\n" + text[nxt + 1 :])
    BENCHMARKS_MD.write_text(text)
    print(f"wrote {BENCHMARKS_MD}")
