"""Raw bytes to and from the appliance, through pyserial.

`serial.serial_for_url` opens whatever names the device: a path (`/dev/ttyACM0`, the stub's
`/dev/pts/N`), `socket://host:port` (a board or emulator reached over TCP) or `loop://`. Reads
wait at most the given timeout and return what has arrived; writes time out after a few seconds
instead of hanging on a device that stopped reading. Every failure of the port (absent, in use,
unplugged mid-call) becomes one `DeviceError` line that names the device and says what to do.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Any

import serial

from verifier.errors import DeviceError

BAUDRATE = 115200  # USB CDC and ptys ignore it; a real UART on the board uses it
WRITE_TIMEOUT = 5.0
_POLL = 0.005  # polling step for handlers without a file descriptor (loop://)
_CHUNK = 65536  # with timeout 0, read() returns what has arrived, up to this much


class SerialTransport:
    """One open serial port. `name` is the device as the user gave it (for messages)."""

    def __init__(self, device: str) -> None:
        self.name = device
        if not device:
            raise DeviceError("no appliance device given; pass --device /dev/ttyACM0")
        try:
            port: Any = serial.serial_for_url(device, do_not_open=True)
            port.baudrate = BAUDRATE
            port.timeout = 0  # non-blocking reads: waiting is done by select() below
            port.write_timeout = WRITE_TIMEOUT
            if "://" not in device:
                port.exclusive = True  # flock: a second tka on the same line is refused
            port.open()
        except serial.SerialException as exc:
            raise DeviceError(_open_error(device, exc)) from None
        except ValueError as exc:
            raise DeviceError(f"cannot open the appliance at {device}: {exc}") from None
        self._port = port
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError, TypeError):
            fd = port.fileno()
            if isinstance(fd, int) and fd >= 0:
                self._fd = fd
        if self._fd is None:
            sock = getattr(port, "_socket", None)
            if sock is not None:
                self._fd = sock.fileno()

    def read(self, timeout: float) -> bytes:
        """What arrives within `timeout` seconds (b"" if nothing)."""
        try:
            waiting = self._port.in_waiting
            if not waiting:
                if self._fd is not None:
                    ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
                    if not ready:
                        return b""
                else:
                    end = time.monotonic() + timeout
                    while not self._port.in_waiting:
                        left = end - time.monotonic()
                        if left <= 0:
                            return b""
                        time.sleep(min(_POLL, left))
                waiting = self._port.in_waiting
            data: bytes = self._port.read(max(_CHUNK, waiting))
            if not data and self._fd is not None and not waiting:
                # select() said readable, yet nothing came: the other end hung up.
                raise serial.SerialException("the line was closed")
            return bytes(data)
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from None

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            raise DeviceError(
                f"the appliance on {self.name} stopped reading (write timed out after "
                f"{WRITE_TIMEOUT:g} s); check the cable and that the device is powered"
            ) from None
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from None

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from None

    def _gone(self, exc: BaseException) -> DeviceError:
        detail = _first_line(exc)
        return DeviceError(
            f"the appliance on {self.name} was disconnected ({detail}); plug it in again "
            "and retry"
        )

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open_error(device: str, exc: serial.SerialException) -> str:
    errno = getattr(exc, "errno", None)
    detail = _first_line(exc)
    if "://" not in device and not os.path.exists(device):
        return (
            f"no appliance at {device} (the device does not exist); plug it in, or pass "
            "--device / TKA_APPLIANCE_DEVICE naming the right port"
        )
    if "exclusively lock" in detail or "Resource temporarily unavailable" in detail:
        return f"the appliance at {device} is in use by another program; close it and retry"
    if errno == 13 or "Permission denied" in detail:
        return (
            f"permission denied opening the appliance at {device}; add yourself to the "
            "group that owns it (often 'dialout') or fix its udev rule"
        )
    return f"cannot open the appliance at {device}: {detail}"
