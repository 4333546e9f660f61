"""`python3 -m control`: one-line errors (exit 1, or 2 for usage), enrolment keys printed once
on stdout, and `serve` stopping cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from control_harness import enrol

from control.__main__ import main
from signer.control_client import HttpTransport

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "control", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(err: str) -> str:
    assert err.startswith("control: ") and err.count("\n") == 1, err
    return err


def test_authkey_is_printed_once_on_stdout(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    proc = _run("authkey", "create", "--db", str(db), "--tailnet-lock", "--expiry", "1h")
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert proc.stdout == key + "\n" and key.startswith("tskey-auth-k")
    assert key not in proc.stderr and "may enable tailnet lock" in proc.stderr
    listing = _run("authkey", "list", "--db", str(db))
    assert listing.returncode == 0
    key_id = key.split("-")[2]
    assert key_id in listing.stdout and key.split("-")[3] not in listing.stdout
    assert "tailnet-lock" in listing.stdout and "valid" in listing.stdout
    proc = _run()
    assert proc.returncode == 2 and proc.stdout == ""
    _one_line_error(proc.stderr)


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "control.db"
    assert main(["authkey", "create", "--db", str(db)]) == 0
    key = capsys.readouterr().out.strip()
    missing = str(tmp_path / "missing.db")
    existing = tmp_path / "exists"
    existing.write_text("x")
    cases: list[tuple[list[str], int, str]] = [
        (["bogus"], 2, "invalid choice"),
        (["authkey"], 2, "required"),
        (["authkey", "create", "--db", str(db), "--expiry", "0d"], 2, "between 1s and 365d"),
        (["authkey", "create", "--db", str(db), "--expiry", "400d"], 2, "between 1s and 365d"),
        (["authkey", "create", "--db", str(db), "--expiry", "soon"], 2, "--expiry"),
        (["authkey", "list", "--db", missing], 1, "no coordination database"),
        (["authkey", "revoke", "--db", str(db), "knope"], 1, "no enrolment key"),
        (["serve", "--db", str(db), "--listen", "0.0.0.0:0"], 1, "without TLS"),
        (["serve", "--db", str(db), "--listen", "[::]:0"], 1, "without TLS"),
        (["serve", "--db", str(db), "--listen", "nonsense"], 2, "HOST:PORT"),
        (["serve", "--db", str(db), "--tls-cert", "c.pem"], 2, "go together"),
        (["serve", "--db", str(db), "--workers", "0"], 2, "--workers"),
        (["serve", "--db", str(db), "--read-timeout", "-1"], 2, "--read-timeout"),
        (["serve", "--db", str(db), "--tls-cert", missing, "--tls-key", missing], 1,
         "cannot load the TLS certificate"),
        (["serve", "--db", str(tmp_path), "--listen", "127.0.0.1:0"], 1, "is not a file"),
        (["support-disable", "--db", str(db)], 1, "support key"),
        (["support-key", "create", "--db", str(db), "--out", str(existing)], 1, "already exists"),
        (["support-disable", "--db", missing], 1, "no coordination database"),
    ]
    for argv, code, reason in cases:
        assert main(argv) == code, argv
        captured = capsys.readouterr()
        assert reason in _one_line_error(captured.err), (argv, captured.err)
        assert captured.out == "", argv
    assert main(["authkey", "revoke", "--db", str(db), key.split("-")[2]]) == 0
    assert main(["authkey", "list", "--db", str(db)]) == 0
    assert "revoked" in capsys.readouterr().out


def test_serve_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "control", "serve", "--db", str(db), "--listen",
         "0.0.0.0:0", "--insecure-listen"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://0.0.0.0:")
        port = url.rsplit(":", 1)[1]
        key = _run("authkey", "create", "--db", str(db)).stdout.strip()
        node = enrol(HttpTransport(f"http://127.0.0.1:{port}"), "n", key)
        assert node.client.netmap()["Self"]["Name"] == "n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "serving" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
