"""Running the appliance's firmware stub (`firmware_stub/`, host board) as a process, and being
the person in front of it: used by `make demo`, the tests and the benchmarks, as
`signer/softhsm.py` is for SoftHSM.

The stub prints `serial: /dev/pts/N` once its pseudo-terminal is open; the host then reaches it
through pyserial exactly as it would reach `/dev/ttyACM0`. Its screen and buttons are a text
channel on a Unix socket (`--ui unix:PATH`, docs/appliance.md §3): `ScreenDriver` reads the
screens the device shows and presses `y` or `n`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import DeviceError

REPO_ROOT = Path(__file__).resolve().parent.parent
STUB_ENV = "TKA_APPLIANCE_STUB"
DEFAULT_STUB = REPO_ROOT / "build" / "stub" / "firmware_stub" / "tka-appliance-stub"

_SERIAL_LINE = re.compile(r"^serial: (\S+)$")


def stub_binary() -> Path:
    """The stub executable: `$TKA_APPLIANCE_STUB`, else the tree `scripts/setup.sh` builds."""
    path = Path(os.environ.get(STUB_ENV) or DEFAULT_STUB)
    if not path.is_file():
        raise DeviceError(
            f"the appliance stub is not built ({path}); run `make setup` or set {STUB_ENV}"
        )
    return path


@dataclass(frozen=True)
class Screen:
    """One screen the device showed: its number and its lines, as the person reads them."""

    number: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class ScreenDriver:
    """The person at the device: reads screens from the UI socket and answers them.

    Screens arrive on a reader thread; `next_screen()` returns them in order. `auto(decide)`
    answers every screen from then on with `decide(screen)` (True = `y`)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise DeviceError(f"the stub's screen channel {path} did not open") from None
                time.sleep(0.02)
        self._screens: queue.Queue[Screen] = queue.Queue()
        self._verdicts: dict[int, str] = {}
        self._verdict_cv = threading.Condition()
        self._auto: Callable[[Screen], bool] | None = None
        self.shown: list[Screen] = []
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        number: int | None = None
        lines: list[str] = []
        with contextlib.suppress(OSError):
            while chunk := self._sock.recv(65536):
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace")
                    if line.startswith("SCREEN "):
                        number, lines = int(line.split()[1]), []
                    elif line.startswith("> ") and number is not None:
                        lines.append(line[2:])
                    elif line == ">" and number is not None:
                        lines.append("")
                    elif line.startswith("PROMPT") and number is not None:
                        shown = Screen(number, tuple(lines))
                        self.shown.append(shown)
                        decide = self._auto
                        if decide is not None:
                            self.press(decide(shown))
                        else:
                            self._screens.put(shown)
                        number = None
                    elif line.startswith("DONE "):
                        _, no, verdict = line.split(maxsplit=2)
                        with self._verdict_cv:
                            self._verdicts[int(no)] = verdict
                            self._verdict_cv.notify_all()

    def next_screen(self, timeout: float = 30.0) -> Screen:
        try:
            return self._screens.get(timeout=timeout)
        except queue.Empty:
            raise DeviceError(f"the device showed no screen within {timeout:g} s") from None

    def press(self, approve: bool) -> None:
        with self._send_lock:
            self._sock.sendall(b"y\n" if approve else b"n\n")

    def approve_next(self, timeout: float = 30.0) -> Screen:
        screen = self.next_screen(timeout)
        self.press(True)
        return screen

    def decline_next(self, timeout: float = 30.0) -> Screen:
        screen = self.next_screen(timeout)
        self.press(False)
        return screen

    def verdict(self, number: int, timeout: float = 30.0) -> str:
        with self._verdict_cv:
            if not self._verdict_cv.wait_for(lambda: number in self._verdicts, timeout):
                raise DeviceError(f"screen {number} got no verdict within {timeout:g} s")
            return self._verdicts[number]

    def auto(self, decide: Callable[[Screen], bool] | None) -> None:
        """Answer every later screen with `decide` (None: stop answering automatically)."""
        self._auto = decide
        if decide is not None:
            while True:
                try:
                    pending = self._screens.get_nowait()
                except queue.Empty:
                    break
                self.press(decide(pending))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class ApplianceStub:
    """One stub process with its flash file; `start()` again after `kill()` is a power cycle."""

    def __init__(self, directory: Path, binary: Path | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.flash = directory / "flash.bin"
        self.ui_path = directory / "ui.sock"
        self.binary = binary or stub_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.serial = ""
        self.ui: ScreenDriver | None = None
        self.stderr_path = directory / "stub.log"

    def start(self, timeout: float = 10.0) -> ApplianceStub:
        if self.proc is not None and self.proc.poll() is None:
            raise DeviceError("the stub is already running")
        self.ui_path.unlink(missing_ok=True)
        log = open(self.stderr_path, "ab")  # the child process keeps its own copy
        self.proc = subprocess.Popen(
            [str(self.binary), "--flash", str(self.flash), "--ui", f"unix:{self.ui_path}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        )
        log.close()
        self.serial = self._read_serial_path(timeout)
        self.ui = ScreenDriver(self.ui_path, timeout)
        return self

    def _read_serial_path(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        found: queue.Queue[str] = queue.Queue()

        def scan() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for raw in self.proc.stdout:
                match = _SERIAL_LINE.match(raw.decode("utf-8", "replace").strip())
                if match:
                    found.put(match.group(1))
            found.put("")

        threading.Thread(target=scan, daemon=True).start()
        try:
            path = found.get(timeout=timeout)
        except queue.Empty:
            path = ""
        if not path:
            self.kill()
            tail = self.stderr_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise DeviceError(
                "the appliance stub did not start" + (f": {tail[0]}" if tail else "")
            )
        return path

    @property
    def uri_device(self) -> str:
        return self.serial

    def key_uri(self, key: str) -> str:
        return f"appliance:device={self.serial};key={key}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process now (SIGKILL by default: a power cut)."""
        if self.ui is not None:
            self.ui.close()
            self.ui = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def __enter__(self) -> ApplianceStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_stub(directory: Path) -> Iterator[ApplianceStub]:
    stub = ApplianceStub(directory).start()
    try:
        yield stub
    finally:
        stub.stop()
