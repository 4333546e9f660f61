"""The client side of the coordination protocol (spec §13): one method per message, over a
transport that either calls the embedded service in-process or speaks HTTP. Both carry the same
JSON messages, so callers never know which one they use."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from verifier.errors import ControlError

Message = dict[str, Any]


class Transport(Protocol):
    def call(self, endpoint: str, request: Message) -> Message: ...

    def close(self) -> None: ...


class InProcessTransport:
    """The embedded service in a SQLite file; requests round-trip through JSON as over HTTP."""

    def __init__(self, db_path: str) -> None:
        from control.service import ControlService  # the one place signer reaches control

        self._service = ControlService(db_path)

    def call(self, endpoint: str, request: Message) -> Message:
        wire = json.loads(json.dumps(request))
        response = self._service.handle(endpoint, wire)
        result: Message = json.loads(json.dumps(response))
        return result

    def close(self) -> None:
        self._service.close()


class HttpTransport:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, endpoint: str, request: Message) -> Message:
        body = json.dumps(request).encode()
        req = urllib.request.Request(  # noqa: S310 - the URL is the configured service
            f"{self.url}/machine/{endpoint}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                result: Message = json.loads(resp.read(10 * 1024 * 1024))
                return result
        except urllib.error.HTTPError as err:
            detail = err.read(1024 * 1024).decode("utf-8", "replace")
            try:
                detail = str(json.loads(detail))
            except ValueError:
                pass
            raise ControlError(f"{detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ControlError(
                f"cannot reach the coordination service at {self.url}: {reason}"
            ) from None

    def close(self) -> None:
        pass


def open_transport(control: str) -> Transport:
    """`http://…`/`https://…` → HTTP; anything else is the embedded service's database file."""
    if control.startswith(("http://", "https://")):
        return HttpTransport(control)
    return InProcessTransport(control)


class ControlClient:
    """Calls made by a node identified by its node key (text form)."""

    def __init__(self, transport: Transport, node_key: str | None = None) -> None:
        self.transport = transport
        self.node_key = node_key

    def _call(self, endpoint: str, **fields: Any) -> Message:
        return self.transport.call(endpoint, {"NodeKey": self.node_key, **fields})

    def register(
        self, name: str, nl_key: str | None, node_key_signature: str | None = None
    ) -> Message:
        return self._call(
            "register", Name=name, NLKey=nl_key, NodeKeySignature=node_key_signature
        )

    def netmap(self) -> Message:
        return self._call("netmap")

    def init_begin(self, genesis_b64: str) -> Message:
        return self._call("tka/init/begin", GenesisAUM=genesis_b64)

    def init_finish(self, signatures: dict[str, str], support_b64: str | None) -> Message:
        fields: Message = {"Signatures": signatures}
        if support_b64:
            fields["SupportDisablement"] = support_b64
        return self._call("tka/init/finish", **fields)

    def bootstrap(self, head: str) -> Message:
        return self._call("tka/bootstrap", Head=head)

    def sync_offer(self, head: str, ancestors: list[str]) -> Message:
        return self._call("tka/sync/offer", Head=head, Ancestors=ancestors)

    def sync_send(self, head: str, missing_b64: list[str], interactive: bool) -> Message:
        return self._call(
            "tka/sync/send", Head=head, MissingAUMs=missing_b64, Interactive=interactive
        )

    def disable(self, head: str, secret_b64: str) -> Message:
        return self._call("tka/disable", Head=head, DisablementSecret=secret_b64)

    def submit_signature(self, nks_b64: str) -> Message:
        return self._call("tka/sign", Signature=nks_b64)

    def affected_signatures(self, key_id_b64: str) -> Message:
        return self._call("tka/affected-sigs", KeyID=key_id_b64)
