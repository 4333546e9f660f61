"""Creating a SoftHSM2 token in a directory of its own: used by `make demo` and the tests, so
that nothing touches the system's token store. PINs are typed into `softhsm2-util` on a
pseudo-terminal, never put on its argv."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def write_softhsm_conf(directory: Path) -> tuple[Path, Path]:
    """A `softhsm2.conf` whose token directory is `directory/tokens`; returns (conf, tokendir)."""
    token_dir = directory / "tokens"
    token_dir.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        "slots.mechanisms = ALL\n"
        "library.reset_on_fork = false\n"
    )
    return conf, token_dir


def init_softhsm_token(conf: Path, label: str, so_pin: str, pin: str) -> None:
    """`softhsm2-util --init-token --free`, with the PINs typed on a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            ["softhsm2-util", "--init-token", "--free", "--label", label],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "SOFTHSM2_CONF": str(conf)},
            start_new_session=True,
        )
        os.close(slave)
        slave = -1
        # SO PIN twice, then user PIN twice (softhsm2-util asks to re-enter each).
        os.write(master, f"{so_pin}\n{so_pin}\n{pin}\n{pin}\n".encode())
        out, err = proc.communicate(timeout=60)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    if proc.returncode != 0:
        raise RuntimeError(f"softhsm2-util --init-token failed: {err.decode()} {out.decode()}")
