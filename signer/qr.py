"""Air-gapped files as QR codes: split into numbered parts, rendered as PNG images or on the
terminal, and read back from PNG images or from the text of each code pasted back.

The text each code holds (every character is in QR's alphanumeric set, the densest mode for it):

    TKA1:<index>/<total>:<payload digest>:<part digest>:<chunk>

- the payload is the file's bytes compressed with zlib; the chunks are its base45 encoding
  (RFC 9285) cut into pieces of at most `CHUNK_CHARS` characters, `<index>` counting from 1;
- `<payload digest>` is the first 16 hex digits (upper case) of the SHA-256 of the file's
  bytes, the same in every part: a part of another payload is told apart by it;
- `<part digest>` is the first 8 hex digits of the SHA-256 of the part's own
  `TKA1:<index>/<total>:<payload digest>:` prefix and chunk: a corrupted or truncated part is
  named by its number.

Reading checks every part before reassembling (one line for the first problem: not a part, a
corrupted part, a part of another payload, a part given twice, parts missing), then the whole
file against its digest. Parts may come in any order. What is read is then checked exactly as a
file would be (the request or response format, the pin, every signature).

segno (pure Python) makes the codes; zxing-cpp and Pillow read PNG images. They are the optional
extra `qr` (`pip install 'tka-signer[qr]'`); without them the QR options say so in one line.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.errors import DecodeError, StorageError, TKAError

PREFIX = "TKA1"
CHUNK_CHARS = 1200  # QR version 25-ish at error correction M: easy for a phone or webcam
MAX_PARTS = 999
MAX_PAYLOAD = 16 << 20  # decompressed bytes accepted

_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUE = {c: i for i, c in enumerate(_BASE45)}
_PART = re.compile(
    r"TKA1:([0-9]{1,3})/([0-9]{1,3}):([0-9A-F]{16}):([0-9A-F]{8}):([0-9A-Z $%*+\-./:]*)")
_INSTALL = "QR codes need the optional extra qr: install tka-signer[qr] " \
    "(pip install 'tka-signer[qr]')"


class QRUnavailable(TKAError):
    """The optional `qr` extra is not installed."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise QRUnavailable(_INSTALL) from None


# -- base45 (RFC 9285) ---------------------------------------------------------------------------


def b45encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += [_BASE45[c], _BASE45[d], _BASE45[e]]
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += [_BASE45[c], _BASE45[d]]
    return "".join(out)


def b45decode(text: str) -> bytes:
    out = bytearray()
    if len(text) % 3 == 1:
        raise DecodeError("not base45: its length leaves one character over")
    try:
        values = [_BASE45_VALUE[c] for c in text]
    except KeyError:
        raise DecodeError("not base45: a character outside its alphabet") from None
    for i in range(0, len(values), 3):
        group = values[i:i + 3]
        if len(group) == 3:
            n = group[0] + group[1] * 45 + group[2] * 45 * 45
            if n > 0xFFFF:
                raise DecodeError("not base45: a group is out of range")
            out += n.to_bytes(2, "big")
        else:
            n = group[0] + group[1] * 45
            if n > 0xFF:
                raise DecodeError("not base45: a group is out of range")
            out.append(n)
    return bytes(out)


# -- parts ---------------------------------------------------------------------------------------


def payload_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16].upper()


def _part_digest(head: str, chunk: str) -> str:
    return hashlib.sha256((head + chunk).encode("ascii")).hexdigest()[:8].upper()


def split(data: bytes, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """The text of each QR code for `data`, in order."""
    encoded = b45encode(zlib.compress(data, 9))
    chunks = [encoded[i:i + chunk_chars] for i in range(0, len(encoded), chunk_chars)] or [""]
    if len(chunks) > MAX_PARTS:
        raise DecodeError(f"too large for QR codes ({len(chunks)} parts, at most {MAX_PARTS}); "
                          "carry the file instead")
    digest, total = payload_digest(data), len(chunks)
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        head = f"{PREFIX}:{index}/{total}:{digest}:"
        parts.append(f"{head}{_part_digest(head, chunk)}:{chunk}")
    return parts


@dataclass(frozen=True)
class _Part:
    index: int
    total: int
    digest: str
    chunk: str
    text: str


def _parse_part(text: str, where: str) -> _Part:
    m = _PART.fullmatch(text)
    if m is None:
        if text.startswith(f"{PREFIX}:"):
            raise DecodeError(f"{where}: a damaged tka QR part (its fields do not parse)")
        raise DecodeError(f"{where}: not a tka QR part (it does not start {PREFIX}:)")
    index, total = int(m.group(1)), int(m.group(2))
    label = f"{where}: part {index}/{total}"
    if not 1 <= index <= total:
        raise DecodeError(f"{label}: its number is out of range")
    head = f"{PREFIX}:{m.group(1)}/{m.group(2)}:{m.group(3)}:"
    if _part_digest(head, m.group(5)) != m.group(4):
        raise DecodeError(f"{label} is corrupted or truncated (its part digest does not "
                          "match); scan or paste it again")
    return _Part(index, total, m.group(3), m.group(5), text)


def join(texts: Iterable[tuple[str, str]]) -> bytes:
    """The file the parts `(where, text)` carry, after checking every part and the whole."""
    parts: dict[int, _Part] = {}
    first: _Part | None = None
    for where, text in texts:
        part = _parse_part(text, where)
        if first is None:
            first = part
        elif (part.digest, part.total) != (first.digest, first.total):
            raise DecodeError(
                f"{where}: part {part.index}/{part.total} belongs to another payload (digest "
                f"{part.digest}, not {first.digest} of part {first.index}/{first.total}); "
                "give the parts of one request or response only")
        if part.index in parts:
            same = "" if parts[part.index].text == part.text else " with different contents"
            raise DecodeError(f"{where}: part {part.index}/{part.total} is given twice{same}")
        parts[part.index] = part
    if first is None:
        raise DecodeError("no tka QR part found in the input")
    missing = [i for i in range(1, first.total + 1) if i not in parts]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (", …" if len(missing) > 10 else "")
        raise DecodeError(f"missing QR part{'' if len(missing) == 1 else 's'} {shown} of "
                          f"{first.total} (payload {first.digest}); scan them too")
    encoded = "".join(parts[i].chunk for i in range(1, first.total + 1))
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(b45decode(encoded), MAX_PAYLOAD)
        if inflater.unconsumed_tail or not inflater.eof:
            raise DecodeError("the payload is truncated or too large")
    except (zlib.error, DecodeError) as err:
        raise DecodeError(f"the QR parts do not reassemble into a file: {err}") from None
    if payload_digest(data) != first.digest:
        raise DecodeError(f"the reassembled payload does not match its digest {first.digest}: "
                          "a part is corrupted; scan the parts again")
    return data


# -- reading -------------------------------------------------------------------------------------


def _image_texts(path: Path, data: bytes) -> list[tuple[str, str]]:
    zxingcpp = _require("zxingcpp")
    image_module = _require("PIL.Image")
    try:
        image = image_module.open(io.BytesIO(data))
        image.load()
    except Exception:  # Pillow raises many kinds for a file it cannot read
        raise DecodeError(f"{path}: not an image Pillow can read") from None
    found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    texts = [(f"{path}", str(r.text)) for r in found if getattr(r, "valid", True)]
    if not texts:
        raise DecodeError(f"{path}: no QR code found in the image")
    return texts


def _text_lines(where: str, text: str) -> list[tuple[str, str]]:
    return [(f"{where} line {n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip()]


_PNG = b"\x89PNG\r\n\x1a\n"
_MAX_INPUT = 64 << 20


def read_sources(sources: Sequence[str], stdin_text: str | None = None) -> bytes:
    """The file carried by QR parts from `sources`: PNG images (any image Pillow reads), text
    files with one part per line (pasted), directories of those, or `-` (`stdin_text`)."""
    texts: list[tuple[str, str]] = []
    for source in sources:
        if source == "-":
            texts += _text_lines("stdin", stdin_text or "")
            continue
        path = Path(source)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                if file.stat().st_size > _MAX_INPUT:
                    raise DecodeError(f"{file}: too large for a QR image or text")
                data = file.read_bytes()
            except OSError as err:
                raise DecodeError(f"cannot read {file}: {err.strerror}") from None
            if data.startswith(_PNG) or data[:3] == b"\xff\xd8\xff":
                texts += _image_texts(file, data)
            else:
                try:
                    texts += _text_lines(str(file), data.decode("ascii"))
                except UnicodeDecodeError:
                    raise DecodeError(f"{file}: neither an image nor QR part text") from None
    return join(texts)


# -- writing -------------------------------------------------------------------------------------


def _code(text: str) -> Any:
    segno = _require("segno")
    return segno.make_qr(text, error="m")


def _caption(index: int, total: int, digest: str) -> str:
    return f"tka {index}/{total}  payload {digest}"


def render_pngs(parts: Sequence[str]) -> list[bytes]:
    """One PNG per part, the code with its caption (`tka i/n  payload DIGEST`) below it."""
    _require("segno")
    image_module = _require("PIL.Image")
    draw_module = _require("PIL.ImageDraw")
    pngs: list[bytes] = []
    for text in parts:
        part = _parse_part(text, "part")
        code = _code(text)
        buf = io.BytesIO()
        code.save(buf, kind="png", scale=4, border=4)
        qr_image = image_module.open(io.BytesIO(buf.getvalue())).convert("L")
        width, height = qr_image.size
        canvas = image_module.new("L", (width, height + 24), 255)
        canvas.paste(qr_image, (0, 0))
        draw_module.Draw(canvas).text((16, height + 4), _caption(part.index, part.total,
                                                                 part.digest), fill=0)
        out = io.BytesIO()
        canvas.save(out, format="PNG")
        pngs.append(out.getvalue())
    return pngs


def render_terminal(parts: Sequence[str]) -> str:
    """Every part as a code drawn with block characters, each under its caption."""
    out = io.StringIO()
    for text in parts:
        part = _parse_part(text, "part")
        print(_caption(part.index, part.total, part.digest), file=out)
        _code(text).terminal(out=out, compact=True, border=2)
        print(file=out)
    return out.getvalue()


def png_names(total: int) -> list[str]:
    width = len(str(total))
    return [f"part-{i:0{width}d}-of-{total}.png" for i in range(1, total + 1)]


def check_png_dir(directory: Path) -> None:
    """Refuse a directory we would not write the images into: before anything is signed."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StorageError(f"cannot write QR images to {directory}: it exists and is not an "
                           "empty directory")
    if not directory.parent.is_dir():
        raise StorageError(f"cannot write QR images to {directory}: {directory.parent} is not "
                           "a directory")


def write_pngs(directory: Path, pngs: Sequence[bytes], mode: int) -> list[Path]:
    """The images as `part-i-of-n.png` in `directory` (new or empty), all or none: written in
    a scratch directory beside it, then renamed into place."""
    check_png_dir(directory)
    scratch = directory.parent / f".{directory.name}.qr-{secrets.token_hex(6)}"
    try:
        os.mkdir(scratch, 0o700)
        names = png_names(len(pngs))
        for name, png in zip(names, pngs, strict=True):
            fd = os.open(scratch / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(png)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(scratch, 0o700 if mode == 0o600 else 0o755)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        os.rename(scratch, directory)
    except OSError as err:
        raise StorageError(f"cannot write QR images to {directory}: {err.strerror}") from None
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return [directory / name for name in names]
