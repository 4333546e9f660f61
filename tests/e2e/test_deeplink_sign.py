"""`tka sign --deeplink`: sign what a signing deeplink names, only if its MAC verifies with the
authority's StateID1. Names from the link go through `safe_text` before they are printed."""

from __future__ import annotations

from tailnet_harness import Tailnet, enable

from signer.echo import safe_text
from verifier.deeplink import new_deeplink


def _state_id1(net: Tailnet, node: str) -> int:
    return int(net.status(node)["State"])  # type: ignore[call-overload]


def test_deeplink_signs_the_named_node_and_only_a_valid_link(
    tailnet: Tailnet, softhsm_token: object
) -> None:
    net = tailnet
    enable(net, softhsm_token.uri(object="admin-lock-key"))  # type: ignore[attr-defined]
    net.ok("phone", "node", "register", "--name", "phone")
    nk, tp = net.node_key("phone"), net.lock_public("phone")
    state_id1 = _state_id1(net, "admin")

    forged = new_deeplink(state_id1 ^ 1, nk, tp, "phone", "iOS", "ann@example.com")
    err = net.fails("admin", "sign", "--yes", "--deeplink", forged)
    assert err == "tka: the signing deeplink is not valid: hmac authentication failed"
    assert net.status("phone")["NodeKeySigned"] is False

    err = net.fails("admin", "sign", "--yes", "--deeplink", "https://example.com/", nk, code=2)
    assert "usage: tka sign --deeplink" in err

    link = new_deeplink(state_id1, nk, tp, "phone\x1b[2J", "iOS", "ann@example.com")
    proc = net.tka("admin", "sign", "--deeplink", link, "--yes")
    assert proc.returncode == 0, proc.stderr
    st = net.status("phone")
    assert st["NodeKeySigned"] is True
    # The rotation key is the link's tailnet-lock key, as Tailscale's signing devices use it.
    assert st["NodeKeySignature"]["WrappingPublicKey"] == tp  # type: ignore[index]


def test_safe_text_escapes_what_could_redraw_a_terminal() -> None:
    assert safe_text("laptop") == "laptop"
    assert safe_text("a\x1b[31mb") == "a\\x1b[31mb"
    assert safe_text("evil\u202etxt.exe") == "evil\\u{202e}txt.exe"
    assert safe_text("line\nbreak\\") == "line\\x0abreak\\\\"
    assert safe_text("Jörg\u2019s Mac") == "Jörg\u2019s Mac"  # printable: kept
    cut = safe_text("x" * 500, limit=40)
    assert len(cut) == 40 and cut.endswith("…")
