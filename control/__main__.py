"""`python3 -m control serve --db PATH [--listen 127.0.0.1:PORT]`: the coordination service
over HTTP on loopback."""

from __future__ import annotations

import argparse
import sys

from control.http import ControlHTTPServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m control")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the coordination API over HTTP")
    serve.add_argument("--db", required=True, help="SQLite database file")
    serve.add_argument("--listen", default="127.0.0.1:0", help="address:port (default loopback)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ControlHTTPServer((host or "127.0.0.1", int(port)), args.db)
    print(f"control: serving {args.db} on {server.url}", file=sys.stderr, flush=True)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
