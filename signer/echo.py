"""Text from outside fit to print or to repeat in a message: another party's text
(`safe_text`), a value the user gave (`clip_input`), a whole error message (`one_line`).

A module of its own, apart from signer.render (which re-exports these), so that a command that
only reports errors and file names (`tka audit`) does not load the renderers at start-up.
"""

from __future__ import annotations

import sys
import unicodedata

# Characters that move the cursor, hide text or reorder it on a terminal.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(text: str, limit: int, backslash: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append(backslash)
        elif unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{{{code:04x}}}")
        else:
            out.append(ch)
    escaped = "".join(out)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def safe_text(text: str, limit: int = 200) -> str:
    """Text another party chose (a node name, key metadata, a deeplink field), fit to print:
    control, formatting and bidirectional characters escaped, backslashes doubled, long text
    cut with an ellipsis."""
    return _escape(text, limit, "\\\\")


# How much of a value the user gave (a path, a URL, an argument) an error message repeats.
ECHO_LIMIT = 80


def clip_input(value: object) -> str:
    """A value the user gave, fit to repeat in a message: escaped like `safe_text`, cut to
    ECHO_LIMIT characters (a 4 kB path must not bury what went wrong) in the middle, since both
    ends of a path or URL tell which one it is."""
    text = _escape(str(value), sys.maxsize, "\\\\")  # as safe_text, but cut below
    if len(text) <= ECHO_LIMIT:
        return text
    head = (ECHO_LIMIT - 1) // 3
    return text[:head] + "…" + text[len(text) - (ECHO_LIMIT - 1 - head) :]


def one_line(message: str, limit: int = 500) -> str:
    """A whole error message fit for one line on stderr: line breaks and other invisible
    characters escaped, cut at `limit`. Backslashes stay single: the parts that echo input
    went through `clip_input` already."""
    return _escape(message, limit, "\\")
