"""Writes seed inputs for the firmware fuzz target into tests/firmware/corpus (the first byte is
the mode, see tests/firmware/fuzz_firmware.c): framed byte streams, one request per method with
good and bad parameters, scripts with button presses and cancels, and template calls carrying
canonical NKSs and AUMs with the harness's placeholders (32 bytes 0xEE: the device's key, 32
0xDD: its head, 32 0xBB: the harness key K, 64 0xCC: K's signature).

    python3 tests/firmware/make_seeds.py
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import cbor2

HERE = Path(__file__).resolve().parent
DEV_KEY = b"\xee" * 32
HEAD = b"\xdd" * 32
K_KEY = b"\xbb" * 32
K_SIG = b"\xcc" * 64


def cobs(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for i, b in enumerate(data):
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
            continue
        block.append(b)
        if len(block) == 254:
            out += b"\xff" + block
            block = bytearray()
            if i + 1 == len(data):
                return bytes(out)
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def frame(kind: int, flags: int, seq: int, offset: int, payload: bytes = b"") -> bytes:
    raw = bytes([1, kind, flags, seq]) + struct.pack(">I", offset) + payload
    return cobs(raw + struct.pack("<I", zlib.crc32(raw))) + b"\x00"


def message_frames(seq: int, msg: bytes, frag: int = 256) -> bytes:
    out = b""
    for off in range(0, max(len(msg), 1), frag):
        chunk = msg[off : off + frag]
        fin = off + len(chunk) >= len(msg)
        out += frame(1, 1 if fin else 0, seq, off, chunk)
    return out


def req(method: str, params: dict[str, object] | None = None, rid: int = 7) -> bytes:
    m: dict[str, object] = {"id": rid, "method": method}
    if params is not None:
        m["params"] = params
    return cbor2.dumps(m)


def enc(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


def key(pub: bytes, votes: int = 1) -> dict[int, object]:
    return {1: 1, 2: votes, 3: pub}


def nks_direct(node: int, wrapping: bytes | None = None) -> bytes:
    m: dict[int, object] = {1: 1, 2: b"np" + bytes([node]) * 32, 3: DEV_KEY}
    if wrapping is not None:
        m[6] = wrapping
    return enc(m)


def nks_credential(wrapping: bytes) -> bytes:
    return enc({1: 3, 3: DEV_KEY, 6: wrapping})


def aum(
    kind: int, prev: bytes | None, sigs: list[tuple[bytes, bytes]] | None = None, **f: object
) -> bytes:
    m: dict[int, object] = {1: kind, 2: prev}
    if "key" in f:
        m[3] = f["key"]
    if "key_id" in f:
        m[4] = f["key_id"]
    if "state" in f:
        m[5] = f["state"]
    if "votes" in f:
        m[6] = f["votes"]
    if "meta" in f:
        m[7] = f["meta"]
    if sigs:
        m[23] = [{1: k, 2: s} for k, s in sigs]
    return enc(m)


def state(
    keys: list[dict[int, object]], disablement: list[bytes], sid1: int = 1111, sid2: int = 2222
) -> dict[int, object]:
    s: dict[int, object] = {1: None, 2: disablement, 3: keys}
    if sid1:
        s[4] = sid1
    if sid2:
        s[5] = sid2
    return s


def items(*blobs: bytes) -> bytes:
    return b"".join(struct.pack(">H", len(b)) + b for b in blobs)


def main() -> None:
    out = HERE / "corpus"
    out.mkdir(exist_ok=True)
    seeds: list[bytes] = []
    new_key = bytes(range(32))

    # Mode 0: framed streams, noise, broken frames.
    hello = frame(5, 0, 0, 0) + message_frames(0, req("info"))
    seeds.append(b"\x00" + hello)
    seeds.append(b"\x00" + hello + message_frames(1, req("status")) + frame(6, 0, 0, 0))
    seeds.append(b"\x00" + message_frames(3, req("audit_log", {"limit": 2}), frag=5))
    seeds.append(b"\x00" + frame(1, 0, 9, 100, b"x") + frame(2, 1, 0, 0) + frame(3, 0, 0, 0))
    broken = bytearray(hello)
    broken[5] ^= 0x40
    seeds.append(b"\x00" + bytes(broken) + b"\x00\x00" + bytes(range(1, 200)) + b"\x00")
    seeds.append(b"\x00" + frame(4, 0, 0, 0, b"\x01") + frame(1, 0x80, 0, 0))

    # Mode 1: one request per method, good and bad parameters (first byte: the answer).
    good = [
        req("info"), req("status"), req("cancel"), req("lock"), req("list_keys"),
        req("authority"), req("get_policy"), req("wipe"),
        req("setup", {"pin": "654321"}), req("unlock", {"pin": "123456"}),
        req("change_pin", {"pin": "123456", "new_pin": "abcdefg"}),
        req("generate_key", {"name": "second"}),
        req("audit_log", {"start": 0, "limit": 3, "nonce": b"n", "ack": 1}),
        req("set_policy", {"policy": {"cosigners": 2, "force_audit": True}}),
        req("set_policy", {"policy": {"max_batch": 1, "auto_lock": 0, "confirm_timeout": 10}}),
        req("sign_nks", {"key": "lock", "nks": b"\xa0", "head": b"\x00" * 32, "timeout": 5}),
        req("authority_update", {"aums": [b"\xa0"]}),
    ]
    bad = [
        req("info", {"x": 1}), req("setup", {"pin": 1}), req("unlock", {}),
        req("generate_key", {"name": "Bad Name"}), req("nope"),
        cbor2.dumps({"id": 1}), cbor2.dumps([1, 2]), cbor2.dumps({"id": -1, "method": "info"}),
        cbor2.dumps({"id": 1, "method": "info", "params": [], "extra": 1}),
        b"\xa2\x62id\x01\x66method\xfb\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\xbf\x62id\x01\xff", b"\xa1" * 20 + b"\x00",
        req("audit_log", {"limit": 65}), req("set_policy", {"policy": {"cosigners": 0}}),
    ]
    for i, r in enumerate(good + bad):
        seeds.append(b"\x01" + bytes([i % 8]) + r)

    # Mode 2: scripts.
    def op(code: int, data: bytes = b"") -> bytes:
        return bytes([code, len(data)]) + data

    gen = req("generate_key", {"name": "s"})
    seeds.append(b"\x02" + op(0, gen) + op(6) + op(0, req("list_keys", rid=8)) + op(1))
    seeds.append(b"\x02" + op(0, gen) + op(7) + op(0, gen) + op(3, b"\x05") + op(2))
    seeds.append(b"\x02" + op(0, gen) + op(4) + op(0, req("info")) + op(5, frame(6, 0, 0, 0)))
    seeds.append(b"\x02" + op(0, req("lock")) + op(0, req("unlock", {"pin": "000000"}))
                 + op(0, req("unlock", {"pin": "123456"})) + op(0, req("wipe")) + op(2))

    # Mode 3: templates (byte 1: template in the low 3 bits, the answer above).
    def tpl(t: int, payload: bytes, how: int = 0) -> bytes:
        return b"\x03" + bytes([(how << 3) | t]) + payload

    seeds += [
        tpl(0, nks_direct(0x42)),
        tpl(0, nks_direct(0x43, wrapping=new_key), how=2),
        tpl(0, nks_direct(0x44, wrapping=b"\x00" * 32)),
        tpl(0, nks_credential(new_key)),
        tpl(0, enc({1: 2, 2: b"np" + b"\x01" * 32, 4: b"\x02" * 64, 5: {1: 1, 3: DEV_KEY}})),
        tpl(4, items(nks_direct(1), nks_direct(2), nks_direct(3))),
        tpl(4, items(nks_direct(1), b"\xa0")),
        tpl(5, nks_direct(0x45) + b"\x00" + b"tailscale://sign?nk=abc&tp=1"),
    ]
    add = aum(1, HEAD, key=key(new_key))
    remove_k = aum(2, HEAD, key_id=K_KEY)
    update = aum(4, HEAD, key_id=K_KEY, votes=3, meta={"owner": "ops"})
    noop = aum(3, HEAD)
    checkpoint = aum(5, HEAD, state=state([key(DEV_KEY), key(K_KEY, 2)], [b"\xd1" * 32]))
    dropping = aum(5, HEAD, state=state([key(DEV_KEY), key(K_KEY, 2)], [b"\xd2" * 32]))
    genesis = aum(5, None, state=state([key(DEV_KEY)], [b"\xd3" * 32], 5, 6))
    seeds += [tpl(1, a) for a in (add, remove_k, update, noop, checkpoint, dropping, genesis)]
    cosigned = aum(1, HEAD, [(K_KEY, K_SIG)], key=key(new_key))
    seeds.append(tpl(1, cosigned, how=1))
    seeds.append(tpl(1, dropping, how=0b001001))  # yes, then yes to the second screen
    # authority_update: AUMs signed by K on the head, one bad.
    signed_add = aum(1, HEAD, [(K_KEY, K_SIG)], key=key(new_key))
    signed_noop = aum(3, HEAD, [(K_KEY, K_SIG)])
    signed_remove = aum(2, HEAD, [(K_KEY, K_SIG)], key_id=DEV_KEY)
    seeds.append(tpl(3, items(signed_add)))
    seeds.append(tpl(3, items(signed_noop, signed_remove)))
    seeds.append(tpl(3, items(aum(1, b"\x09" * 32, [(K_KEY, K_SIG)], key=key(new_key)))))
    seeds.append(tpl(3, items(aum(1, HEAD, [(K_KEY, b"\x01" * 64)], key=key(new_key)))))
    # enroll: a parentless checkpoint signed by K, confirmed or declined.
    k_genesis = aum(5, None, [(K_KEY, K_SIG)], state=state([key(K_KEY)], [b"\xd4" * 32], 7, 8))
    seeds.append(tpl(2, k_genesis, how=1))
    seeds.append(tpl(2, k_genesis, how=2))
    seeds.append(tpl(6, enc({"cosigners": 2})))
    seeds.append(tpl(7, enc({"start": 0, "limit": 1, "nonce": b"abc"})))

    # Inputs libFuzzer added stay: seeds are named by their hash, so rewriting them is harmless.
    for seed in seeds:
        (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
