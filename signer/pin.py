"""Where a PIN comes from, for a PKCS#11 token or the appliance.

Order: the URI's `pin-source=` (a file), then an environment variable (`TKA_PKCS11_PIN` for
tokens, `TKA_APPLIANCE_PIN` for the appliance), then the caller's callback (by default an
interactive prompt on the terminal). A PIN is never taken from argv, never logged and never put
into an exception message: every error here names the *source* of the PIN, not its value. A PIN
file must be a regular file with no permission bit for group or others (mode 0600 or 0400).
"""

from __future__ import annotations

import getpass
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from signer.echo import clip_input
from verifier.errors import SignerError

PIN_ENV = "TKA_PKCS11_PIN"

# Called with a short description of what the PIN unlocks (e.g. "token 'tailnet-lock'").
PinCallback = Callable[[str], str]


def _have_terminal() -> bool:
    """Whether the process has a controlling terminal to ask on. getpass reads from /dev/tty,
    not stdin, so a PIN can be typed while stdin carries data (`tka … --in - < keys.txt`)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def prompt_pin(what: str, env_var: str = PIN_ENV) -> str:
    """Ask on the terminal (no echo), which need not be stdin. Refuses when there is no
    terminal to ask on."""
    if not _have_terminal():
        raise SignerError(
            f"a PIN is needed for {what} but there is no terminal to ask on; "
            f"add pin-source=file:/path/to/pin to the key URI or set {env_var}"
        )
    try:
        pin = getpass.getpass(f"PIN for {what}: ")
    except EOFError:
        raise SignerError(f"no PIN entered for {what}") from None
    if not pin:
        raise SignerError(f"empty PIN entered for {what}")
    return pin


def read_pin_file(source: str) -> str:
    """Read a PIN from `file:/path` or a bare path; the first line, trailing whitespace removed.

    A PIN file that group or others may read or write is refused: another user could use the
    key, or replace the PIN with one that burns the retry counter.
    """
    if source.startswith("file:"):
        from signer.uri import parse_file_uri  # local import: uri imports nothing from here

        path = parse_file_uri(source)
    elif source.startswith("|"):
        raise SignerError("pin-source commands ('|…') are not supported; use a file")
    else:
        path = Path(source)
    shown = clip_input(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise SignerError(f"cannot read PIN file {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SignerError(f"PIN file {shown} is not a regular file")
    if st.st_mode & 0o077:
        raise SignerError(
            f"PIN file {shown} is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {shown}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignerError(f"cannot read PIN file {shown}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SignerError(f"PIN file {shown} is not UTF-8 text") from None
    lines = text.splitlines()
    pin = lines[0].rstrip() if lines else ""
    if not pin:
        raise SignerError(f"PIN file {shown} is empty")
    return pin


def resolve_pin(
    what: str,
    *,
    uri_pin_source: str | None,
    callback: PinCallback | None = None,
    env: Mapping[str, str] | None = None,
    env_var: str = PIN_ENV,
) -> str:
    """Return the PIN for `what`, following the order in the module docstring."""
    if uri_pin_source is not None:
        return read_pin_file(uri_pin_source)
    environ = os.environ if env is None else env
    from_env = environ.get(env_var)
    if from_env:
        return from_env
    if callback is not None:
        return callback(what)
    return prompt_pin(what, env_var)
