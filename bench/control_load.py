"""Concurrent load on the coordination service over HTTP on loopback.

    python3 bench/control_load.py [--clients 20] [--requests 500] [--workers 4]

Starts `python3 -m control serve` (a child process) on a new database in a temporary
directory, enrols one node per client with a reusable enrolment key, then runs every client at
once, each making its requests one after another: an authenticated `netmap` (its credential;
tailnet lock enabled, so every answer carries the head and every node's signature), each on a
new connection, since the server closes after each
response. A request is dropped when its connection ends without a complete HTTP response.
Prints the machine, requests, dropped, non-200 answers, latency percentiles and throughput;
exits 1 if any request was dropped or not answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.control_common import (
    Answer,
    BenchNode,
    Server,
    admin,
    call,
    enable_lock,
    enrol,
    machine,
)


@dataclass
class LoadResult:
    clients: int
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    dropped: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # non-200 answers by status
    wrong: int = 0  # a 200 whose body is not this node's netmap

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def ok(self) -> bool:
        return (self.dropped == 0 and not self.refused and self.wrong == 0
                and len(self.latencies) == self.clients * self.requests)

    def report(self) -> str:
        total = self.clients * self.requests
        return "\n".join([
            f"{self.clients} clients x {self.requests} netmap requests = {total}, "
            f"one connection each, in {self.seconds:.2f} s",
            f"dropped {self.dropped}, refused {sum(self.refused.values())}"
            f"{f' {self.refused}' if self.refused else ''}, wrong {self.wrong}",
            f"latency p50 {self.percentile(50) * 1000:.1f} ms, p99 "
            f"{self.percentile(99) * 1000:.1f} ms, max {max(self.latencies, default=0) * 1000:.1f}"
            f" ms; throughput {len(self.latencies) / self.seconds:.0f} requests/s",
        ])


async def _client(server: Server, node: BenchNode, peers: int, requests: int,
                  result: LoadResult) -> None:
    message = {"NodeKey": node.node_key_text}
    for _ in range(requests):
        answer: Answer = await call(server.host, server.port, "netmap", message, node.credential)
        if answer.dropped:
            result.dropped += 1
            continue
        if answer.status != 200:
            result.refused[answer.status or 0] = result.refused.get(answer.status or 0, 0) + 1
            continue
        netmap = json.loads(answer.body)
        if (netmap["Self"]["Name"] != node.name or len(netmap["Peers"]) != peers
                or not netmap["TKAInfo"]["Head"] or "KeySignature" not in netmap["Self"]):
            result.wrong += 1
        result.latencies.append(answer.seconds)


async def _run(server: Server, clients: int, requests: int) -> LoadResult:
    key = admin(server.db, "authkey", "create", "--reusable", "--expiry", "1h", "--tailnet-lock")
    nodes = [await enrol(server.host, server.port, f"node{i}", key) for i in range(clients)]
    # Tailnet lock on, every node signed: each netmap carries the head and every signature.
    await enable_lock(server.host, server.port, nodes[0], nodes[1:])
    result = LoadResult(clients, requests, 0.0)
    started = time.monotonic()
    await asyncio.gather(*(_client(server, n, clients - 1, requests, result) for n in nodes))
    result.seconds = time.monotonic() - started
    return result


def run_load(directory: Path, clients: int = 20, requests: int = 500,
             workers: int = 4) -> LoadResult:
    """Serve a new database in `directory` and put it under load; the server is stopped after
    (SIGTERM) and must exit cleanly."""
    db = directory / "control.db"
    with Server(db, "--workers", str(workers)) as server:
        result = asyncio.run(_run(server, clients, requests))
        code = server.stop()
    if code != 0:
        raise RuntimeError(f"the service exited {code}: {server.stderr}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="tka-control-load-") as tmp:
        result = run_load(Path(tmp), args.clients, args.requests, args.workers)
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
