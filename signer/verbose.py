"""`tka -v`: a log on stderr of what a command does — which state directory and service it
uses, which key it opens, each call to the service and each sync step, what it signs and which
files it writes — through the `logging` module's `tka` logger, one `tka -v: …` line each.

Without -v nothing is printed and the logging module is not even loaded (it costs a few
milliseconds of start-up, issue 14 item 4): `log()` is one test of a global until `enable()`.

Never pass a secret to `log()`: no PIN, disablement secret, private key, auth key or node
credential. Key URIs go through `key_uri()` first, which hides the value of a `pin-value=`
attribute should one be typed (`tka` refuses such URIs anyway).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

LOGGER_NAME = "tka"
PREFIX = "tka -v: "

_logger: logging.Logger | None = None
_handler: logging.Handler | None = None

# Patterns compiled on first use (re's cache), not on import: only -v and key URIs need them, and
# compiling costs start-up time (issue 14 item 4).
_CONTROL = r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_PIN_VALUE = r"(pin-value)=[^;?&]*"


def enable(on: bool) -> None:
    """Log to the current stderr from now on (`on`), or stop logging."""
    global _logger, _handler
    if _logger is not None and _handler is not None:
        _logger.removeHandler(_handler)
    _logger = _handler = None
    if not on:
        return
    import logging

    class OneLine(logging.Formatter):
        """Every record one line: control and bidi characters that reached a message (a path,
        a name from the service) are escaped."""

        def format(self, record: logging.LogRecord) -> str:
            return re.sub(_CONTROL, _escape, super().format(record))

    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine(PREFIX + "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # an application's root handlers would print it twice
    _logger, _handler = logger, handler


def enabled() -> bool:
    return _logger is not None


def log(message: str, *args: object) -> None:
    """`message % args` on stderr with -v; nothing (and no formatting) without."""
    if _logger is not None:
        _logger.info(message, *args)


_USERINFO = re.compile(r"(://)[^/@?#]*@")


def address(text: str) -> str:
    """A service address as it may be logged: without a `user:password@` part."""
    return _USERINFO.sub(r"\1(hidden)@", text)


def key_uri(uri: str) -> str:
    """A key URI as it may be logged: the value of any `pin-value=` replaced."""
    return re.sub(_PIN_VALUE, r"\1=(hidden)", uri, flags=re.IGNORECASE)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{{{ord(ch):x}}}"
