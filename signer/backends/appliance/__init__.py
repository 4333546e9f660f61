"""The signer appliance's host side (docs/appliance.md), layered like Blockstream Jade's client:

- `transport`: bytes over pyserial (`serial_for_url`: a path, `socket://`, `loop://`);
- `framing`: COBS frames with CRC-32 and the link layer (RESET, go-back-N, NAK, BUSY/ALIVE);
- `rpc`: CBOR requests and responses, error codes as exception classes;
- `api`: `Appliance`, one method per call;
- `backend`: `ApplianceBackend`, the `KeyBackend` the rest of `signer` signs with;
- `identity`: the device identity key pinned on first use; `auditlog`: the signed audit log;
- `uri`: `appliance:device=…;key=…` URIs and PIN sources.
"""

from __future__ import annotations

from signer.backends.appliance.uri import ApplianceUri, parse_appliance_uri

__all__ = ["ApplianceUri", "parse_appliance_uri"]
