"""cffi (API mode) build of `verifier._native` from native/src/*.c.

The cdef is read from native/include/tka_native.h, so adding a declaration to that header is
all a new C entry point needs. setup.py names `native/build.py:ffibuilder`; running this file
directly (`python3 native/build.py`) builds the extension in place into verifier/ for
development.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "native" / "include" / "tka_native.h"
SOURCE_DIR = ROOT / "native" / "src"
# Python's own CFLAGS (sysconfig), which setuptools puts first, carry -fwrapv: defined wrapping of
# signed overflow cost single verification 12% (Zen 3, GCC 12, best of ten alternating runs;
# the C core never relies on it: the sanitizer builds trap signed overflow), so it is undone.
CFLAGS = ["-O3", "-fno-wrapv", "-std=c11", "-Wall", "-Wextra"]
# Warnings are errors where we build (in place here, and in CMake's builds of the same sources),
# not in a wheel built from the sdist: a newer compiler's new warning must not stop an install.
DEV_CFLAGS = [*CFLAGS, "-Werror"]

_DEFINE_INT = re.compile(r"^#\s*define\s+[A-Za-z_]\w*\s+-?(0x[0-9A-Fa-f]+|\d+)[uUlL]*\b")


def header_cdef(text: str) -> str:
    """The header with what cffi's cdef parser can't read removed.

    Keeps `#define NAME <integer>`; drops every other preprocessor line and everything
    inside `#ifdef __cplusplus ... #endif` (the extern "C" guards).
    """
    out: list[str] = []
    in_cplusplus = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_cplusplus:
            if stripped.startswith("#") and stripped[1:].strip().startswith("endif"):
                in_cplusplus = False
            continue
        if stripped.startswith("#"):
            directive = stripped[1:].strip()
            if directive.startswith("ifdef") and "__cplusplus" in directive:
                in_cplusplus = True
            elif _DEFINE_INT.match(stripped):
                # cffi wants the bare value; drop trailing comments.
                out.append(re.sub(r"/\*.*?\*/", "", line).rstrip())
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def make_builder(absolute: bool) -> FFI:
    """setuptools wants paths relative to the project root; cffi's own `compile()` runs the
    compiler from its temporary directory and so needs absolute ones (and is the in-place
    development build, with warnings as errors)."""
    base = ROOT if absolute else Path()
    builder = FFI()
    builder.cdef(header_cdef(HEADER.read_text()))
    builder.set_source(
        "verifier._native",
        '#include "tka_native.h"\n',
        sources=sorted(str(base / p.relative_to(ROOT)) for p in SOURCE_DIR.glob("*.c")),
        include_dirs=[str(base / "native" / "include"), str(base / "native" / "src")],
        extra_compile_args=DEV_CFLAGS if absolute else CFLAGS,
        libraries=["pthread"],
    )
    return builder


ffibuilder = make_builder(absolute=False)


def build_in_place() -> Path:
    """Compile into build/cffi and copy the extension next to verifier/__init__.py."""
    tmpdir = ROOT / "build" / "cffi"
    tmpdir.mkdir(parents=True, exist_ok=True)
    built = Path(make_builder(absolute=True).compile(tmpdir=str(tmpdir), verbose=False))
    target = ROOT / "verifier" / built.name
    # Copy then rename: overwriting the file in place would crash (SIGBUS) any running
    # process that has the old extension mapped.
    staging = target.with_name(target.name + ".tmp")
    shutil.copy2(built, staging)
    os.replace(staging, target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
