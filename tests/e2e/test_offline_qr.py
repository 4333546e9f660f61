"""Air-gapped files as QR codes through the real CLI: PNG images decoded with zxing-cpp, the text
of each code pasted back, the terminal rendering, and what a broken set of parts is told (a part
missing, given twice, from another payload, truncated or corrupted): one line each, nothing
signed, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import PIL.Image
import zxingcpp
from tailnet_harness import REPO, Tailnet, enable
from test_offline_signing import enroll, offline, refused, tree_digest

from signer import qr
from verifier.authority import Authority
from verifier.storage import FilesystemStorage


def _texts(directory: Path) -> list[str]:
    """The text of each code in the images, in file order."""
    out = []
    for image in sorted(directory.glob("part-*.png")):
        (found,) = zxingcpp.read_barcodes(PIL.Image.open(image))
        out.append(found.text)
    return out


def _setup(net: Tailnet, softhsm_token: Any, tmp_path: Path, nodes: int) -> tuple[str, Path,
                                                                                list[str]]:
    hsm = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm)
    names = [f"n{i}" for i in range(nodes)]
    for name in names:
        net.ok(name, "node", "register", "--name", name)
    (tmp_path / "airgap").mkdir()
    pin = tmp_path / "airgap" / "authority"
    enroll(net, pin, tmp_path)
    return hsm, pin, [net.node_key(n) for n in names]


def test_request_and_response_by_png_paste_back_and_terminal(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm, pin, keys = _setup(net, softhsm_token, tmp_path, 40)
    req_dir = tmp_path / "req-qr"
    out = net.ok("laptop", "offline", "request", *keys, "--qr", str(req_dir), "--qr-terminal",
                 "--out", str(tmp_path / "req.json"))
    parts = _texts(req_dir)
    total = len(parts)
    assert total >= 3, total  # large enough to be split
    digest = qr.payload_digest((tmp_path / "req.json").read_bytes())
    assert all(p.startswith(f"TKA1:{i}/{total}:{digest}:") for i, p in enumerate(parts, 1))
    assert [p.name for p in sorted(req_dir.iterdir())] == \
        [f"part-{i}-of-{total}.png" for i in range(1, total + 1)]
    for i in range(1, total + 1):  # the terminal: each code under its caption
        assert f"tka {i}/{total}  payload {digest}" in out
    assert "\u2580" in out or "\u2584" in out  # drawn with half blocks
    assert f"as {total} QR codes to {req_dir}" in out

    # Offline, the text of each code pasted back (in any order) is the same request.
    pasted = tmp_path / "pasted.txt"
    pasted.write_text("\n".join(reversed(parts)) + "\n")
    resp_dir = tmp_path / "resp-qr"
    proc = offline(net, "sign", "--authority", str(pin), "--in-qr", str(pasted), "--qr",
                   str(resp_dir), "--key", hsm, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert all(f"will sign node key {k}" in proc.stderr for k in keys)
    # Online, the response's images are decoded and submitted.
    out = net.ok("laptop", "offline", "submit", "--in-qr", str(resp_dir))
    assert out.count("submitted the signature for node key") == 40
    assert net.status("n7")["NodeKeySigned"] is True

    # The pin can be enrolled from QR codes too (export-authority --qr, enroll --in-qr).
    export = tmp_path / "export-qr"
    net.ok("laptop", "offline", "export-authority", "--qr", str(export))
    second = tmp_path / "airgap" / "second-pin"
    proc = offline(net, "enroll", "--authority", str(second), "--in-qr", str(export),
                   "--head", str(net.status("admin")["Head"]))
    assert proc.returncode == 0, proc.stderr
    assert str(Authority.open(FilesystemStorage(second)).head) == net.status("admin")["Head"]

    # Pasted on stdin too (a response needs no prompt); submitting the same again is harmless.
    texts = "\n".join(_texts(resp_dir)) + "\n"
    proc = net.tka("laptop", "offline", "submit", "--in-qr", "-", stdin=texts)
    assert proc.returncode == 0, proc.stderr


def test_broken_parts_are_told_in_one_line_and_nothing_is_signed(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm, pin, keys = _setup(net, softhsm_token, tmp_path, 30)
    net.ok("laptop", "offline", "request", *keys, "--qr", str(tmp_path / "a"))
    net.ok("laptop", "offline", "request", *keys[:29], "--qr", str(tmp_path / "b"))
    parts, others = _texts(tmp_path / "a"), _texts(tmp_path / "b")
    assert len(parts) >= 3
    total = len(parts)
    resp = tmp_path / "resp.json"
    pasted = tmp_path / "pasted.txt"

    def refused_with(lines: list[str]) -> str:
        pasted.write_text("\n".join(lines) + "\n")
        return refused(net, pin, "sign", "--authority", str(pin), "--in-qr", str(pasted),
                       "--out", str(resp), "--key", hsm, "--yes")

    assert f"missing QR part 2 of {total}" in refused_with([parts[0], *parts[2:]])
    assert f"part 2/{total} is given twice" in refused_with([*parts, parts[1]])
    assert "belongs to another payload" in refused_with([*parts[:-1], others[-1]])
    truncated = parts[1][:-7]
    assert f"part 2/{total} is corrupted or truncated" in refused_with(
        [parts[0], truncated, *parts[2:]])
    flipped = parts[2][:-1] + ("A" if parts[2][-1] != "A" else "B")
    assert f"part 3/{total} is corrupted or truncated" in refused_with(
        [*parts[:2], flipped, *parts[3:]])
    assert "not a tka QR part" in refused_with(["hello", *parts])
    assert "no tka QR part" in refused_with([])

    # The same from images: one image gone, one image from the other request.
    images = tmp_path / "images"
    shutil.copytree(tmp_path / "a", images)
    (images / f"part-2-of-{total}.png").unlink()
    assert f"missing QR part 2 of {total}" in refused(
        net, pin, "sign", "--authority", str(pin), "--in-qr", str(images), "--out", str(resp),
        "--key", hsm, "--yes")
    shutil.copy(sorted((tmp_path / "b").glob("*.png"))[0], images / "z-foreign.png")
    assert "belongs to another payload" in refused(
        net, pin, "sign", "--authority", str(pin), "--in-qr", str(images), "--out", str(resp),
        "--key", hsm, "--yes")
    blank = tmp_path / "blank.png"
    PIL.Image.new("L", (64, 64), 255).save(blank)
    assert "no QR code found" in refused(
        net, pin, "sign", "--authority", str(pin), "--in-qr", str(blank), "--out", str(resp),
        "--key", hsm, "--yes")

    # A response QR directory that is not empty is refused before anything is signed.
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep").write_text("x")
    before = tree_digest(pin)
    proc = offline(net, "sign", "--authority", str(pin), "--in-qr", str(tmp_path / "a"),
                   "--qr", str(taken), "--key", hsm, "--yes")
    assert proc.returncode == 1 and "not an empty directory" in proc.stderr
    assert tree_digest(pin) == before and [p.name for p in taken.iterdir()] == ["keep"]
    # No output named at all: a usage error.
    proc = offline(net, "sign", "--authority", str(pin), "--in-qr", str(tmp_path / "a"),
                   "--key", hsm, "--yes")
    assert proc.returncode == 2 and "--out FILE, --qr DIR and/or --qr-terminal" in proc.stderr


def test_without_the_qr_extra_one_line_says_what_to_install(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm, pin, keys = _setup(net, softhsm_token, tmp_path, 1)
    net.ok("laptop", "offline", "request", keys[0], "--qr", str(tmp_path / "req"))
    shim = tmp_path / "shim"
    for name in ("segno", "zxingcpp"):
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = dict(net.env, PYTHONPATH=str(shim))
    bare = Tailnet(net.root, net.control, env)

    line = bare.fails("laptop", "offline", "request", keys[0], "--qr", str(tmp_path / "new"))
    assert "install tka-signer[qr]" in line
    assert not (tmp_path / "new").exists()
    line = refused(bare, pin, "sign", "--authority", str(pin), "--in-qr", str(tmp_path / "req"),
                   "--out", str(tmp_path / "resp.json"), "--key", hsm, "--yes")
    assert "install tka-signer[qr]" in line
    # Files still work without it.
    net.ok("laptop", "offline", "request", keys[0], "--out", str(tmp_path / "r.json"))
    proc = subprocess.run(
        [sys.executable, "-m", "signer.cli", "offline", "sign", "--authority", str(pin), "--in",
         str(tmp_path / "r.json"), "--out", str(tmp_path / "s.json"), "--key", hsm, "--yes"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s.json").read_text())["Version"] == 1
