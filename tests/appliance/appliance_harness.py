"""Helpers the appliance tests share (imported as `appliance_harness`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from signer.appliance_stub import ApplianceStub, Screen
from signer.backends.appliance.api import Appliance


def run_tka(args: list[str], env: dict[str, str], timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, input=input)


def spawn_tka(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "signer.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def open_device(stub: ApplianceStub) -> Appliance:
    return Appliance.open(stub.serial, notify=None)


def wait_screen(stub: ApplianceStub, timeout: float = 15.0) -> Screen:
    assert stub.ui is not None
    return stub.ui.next_screen(timeout)


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def error_line(stderr: str) -> str:
    """The one `tka: …` error line of a failed command (other lines, such as "confirm on the
    device", may precede it); no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tka: ")]
    assert len(lines) == 1, f"expected one 'tka:' line, got: {stderr!r}"
    return lines[0]


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    assert "Traceback" not in text
    return lines[0]


__all__ = [
    "error_line", "one_line", "open_device", "run_on_terminal", "run_tka", "spawn_tka",
    "wait_screen", "wait_until",
]


def run_on_terminal(args: list[str], env: dict[str, str], answers: list[tuple[str, str]],
                    timeout: float = 60) -> tuple[int, str]:
    """Run `tka ARGS` on a pseudo-terminal (its controlling terminal, so getpass asks there);
    answer each prompt (`(prompt text, answer)`, in order). Returns (exit code, everything it
    wrote to the terminal)."""
    import pty
    import select as _select

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes `python -m signer.cli ARGS` on the terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "signer.cli", *args], env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = _select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if pending and pending[0][0].encode() in output:
                prompt, answer = pending.pop(0)
                output = output.replace(prompt.encode(), b"<" + prompt.encode() + b">", 1)
                os.write(fd, answer.encode() + b"\r")
        _pid, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = output.decode(errors="replace").replace("\r\n", "\n")
    return os.waitstatus_to_exitcode(status), text
