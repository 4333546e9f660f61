"""A bad serial line between the host and the appliance, for soak tests.

    python bench/lineproxy.py /dev/pts/7 [--corrupt 0.01] [--drops-per-minute 6] [--seed N]

Opens a pseudo-terminal pair for the host (its path is printed: `host: /dev/pts/N`, give it to
tka as the device) and relays bytes to and from the device's serial port (the stub's pty).
In both directions it

- corrupts a fraction of the bytes (default 1 %): each corrupted byte is replaced by a different
  random byte (so a 0x00 delimiter can appear or vanish, splitting or merging frames);
- drops the line at random: stretches of total loss (both directions, 50-800 ms each, at
  random times, `--drops-per-minute` on average, with at least a second of live line between
  two of them).

It reports what it did (bytes relayed, corrupted, dropped, outages) when it stops (Ctrl-C), and
`LineProxy.stats()` gives the same counts to a test or benchmark that runs it in-process:

    with LineProxy(stub.serial, corrupt=0.01) as proxy:
        dev = Appliance.open(proxy.host_path)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import select
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class Direction:
    relayed: int = 0
    corrupted: int = 0
    dropped: int = 0


@dataclass
class ProxyStats:
    to_device: Direction = field(default_factory=Direction)
    to_host: Direction = field(default_factory=Direction)
    outages: int = 0
    outage_seconds: float = 0.0

    def summary(self) -> str:
        d, h = self.to_device, self.to_host
        return (
            f"host→device {d.relayed} bytes ({d.corrupted} corrupted, {d.dropped} dropped); "
            f"device→host {h.relayed} bytes ({h.corrupted} corrupted, {h.dropped} dropped); "
            f"{self.outages} outages, {self.outage_seconds:.1f} s of total loss"
        )


def _raw(fd: int) -> None:
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


MIN_DROP_GAP = 1.0  # seconds of live line between two drops


class LineProxy:
    """Relays between a new host-side pty and `device_path`, damaging the line."""

    def __init__(
        self,
        device_path: str,
        *,
        corrupt: float = 0.01,
        drops_per_minute: float = 6.0,
        drop_min: float = 0.05,
        drop_max: float = 0.8,
        seed: int | None = None,
    ) -> None:
        if not 0 <= corrupt < 1:
            raise ValueError("corrupt must be a fraction in [0, 1)")
        self.device_path = device_path
        self.corrupt = corrupt
        self.drops_per_minute = drops_per_minute
        self.drop_min, self.drop_max = drop_min, drop_max
        self._rng = random.Random(seed)
        self._stats = ProxyStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master, self._slave = os.openpty()
        _raw(self._slave)  # no echo or line editing before the host opens its end
        self.host_path = os.ttyname(self._slave)
        self._device = os.open(device_path, os.O_RDWR | os.O_NOCTTY)
        _raw(self._device)
        for fd in (self._master, self._device):
            os.set_blocking(fd, False)
        self._outage_until = 0.0
        self._next_outage = self._schedule(time.monotonic())
        self._skip = {"to_device": self._gap(), "to_host": self._gap()}

    # -- damage ----------------------------------------------------------------------------

    def _schedule(self, now: float) -> float:
        """When the next drop starts: at random (`drops_per_minute` on average), but never
        within a second of the last one's end, so that drops stay drops of at most `drop_max`
        and do not chain into a dead line (a host rightly gives up on one of those)."""
        if self.drops_per_minute <= 0:
            return math.inf
        return now + MIN_DROP_GAP + self._rng.expovariate(self.drops_per_minute / 60.0)

    def _gap(self) -> int:
        """Bytes until the next corrupted one (geometric, so each byte has probability p)."""
        if self.corrupt <= 0:
            return 1 << 62
        u = 1.0 - self._rng.random()
        return int(math.log(u) / math.log(1.0 - self.corrupt))

    def _damage(self, data: bytes, which: str, stats: Direction) -> bytes:
        out = bytearray(data)
        pos = self._skip[which]
        while pos < len(out):
            out[pos] ^= self._rng.randrange(1, 256)
            stats.corrupted += 1
            pos += 1 + self._gap()
        self._skip[which] = pos - len(out)
        return bytes(out)

    # -- relaying --------------------------------------------------------------------------

    def _relay(self, src: int, dst: int, which: str, stats: Direction) -> bool:
        try:
            data = os.read(src, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False  # the other end is gone
        if not data:
            return False
        now = time.monotonic()
        with self._lock:
            if now >= self._next_outage and now >= self._outage_until:
                length = self._rng.uniform(self.drop_min, self.drop_max)
                self._outage_until = now + length
                self._next_outage = self._schedule(self._outage_until)
                self._stats.outages += 1
                self._stats.outage_seconds += length
            if now < self._outage_until:
                stats.dropped += len(data)
                return True
            stats.relayed += len(data)
            data = self._damage(data, which, stats)
        view = memoryview(data)
        while view:
            try:
                n = os.write(dst, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [dst], [], 0.05)
            except OSError:
                return False
        return True

    def _run(self) -> None:
        pairs = {
            self._master: (self._device, "to_device", self._stats.to_device),
            self._device: (self._master, "to_host", self._stats.to_host),
        }
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.05)
            except (OSError, ValueError):
                return
            for fd in ready:
                dst, which, stats = pairs[fd]
                if not self._relay(fd, dst, which, stats):
                    if fd == self._device:
                        return  # the device went away
                    time.sleep(0.01)  # the host closed its end; it may open it again

    def start(self) -> LineProxy:
        self._thread = threading.Thread(target=self._run, name="lineproxy", daemon=True)
        self._thread.start()
        return self

    def stats(self) -> ProxyStats:
        with self._lock:
            s = self._stats
            return ProxyStats(
                to_device=Direction(**vars(s.to_device)), to_host=Direction(**vars(s.to_host)),
                outages=s.outages, outage_seconds=s.outage_seconds,
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._device):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> LineProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("device", help="the device's serial port (the stub's /dev/pts/N)")
    parser.add_argument("--corrupt", type=float, default=0.01,
                        help="fraction of bytes corrupted, both directions (default 0.01)")
    parser.add_argument("--drops-per-minute", type=float, default=6.0,
                        help="average number of line drops per minute (default 6; 0 = none)")
    parser.add_argument("--drop-min", type=float, default=0.05, help="shortest drop, seconds")
    parser.add_argument("--drop-max", type=float, default=0.8, help="longest drop, seconds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    proxy = LineProxy(args.device, corrupt=args.corrupt, drops_per_minute=args.drops_per_minute,
                      drop_min=args.drop_min, drop_max=args.drop_max, seed=args.seed).start()
    print(f"host: {proxy.host_path}", flush=True)
    try:
        while proxy._thread is not None and proxy._thread.is_alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        print(f"lineproxy: {proxy.stats().summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
