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


def native_path() -> tuple[str, str, str]:
    """(label, section-title suffix, environment prefix) of the native path this process runs:
    AVX-512 IFMA, AVX2 (no IFMA, or IFMA turned off) or scalar (both turned off or absent), so
    that each path's figures keep a section of their own."""
    import os

    from verifier._native import lib

    switches = "".join(
        f"{name}=1 " for name in ("TKA_NATIVE_NO_IFMA", "TKA_NATIVE_NO_AVX2")
        if os.environ.get(name, "") not in ("", "0")
    )
    features = lib.tka_native_features()
    if features & lib.TKA_FEATURE_IFMA:
        return "AVX-512 IFMA", "", switches
    if features & lib.TKA_FEATURE_AVX2:
        return "AVX2", " (AVX2 path, no AVX-512 IFMA)", switches
    return "scalar", " (portable path, no AVX-512 IFMA)", switches
