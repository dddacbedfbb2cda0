#!/usr/bin/env python3
"""Verify a DSSE envelope with securesystemslib, the reference in-toto implementation.

Usage: verify_dsse.py ENVELOPE.json PUBLIC_KEY_HEX
Prints the payload type and exits 0 when an ed25519 signature over the DSSE PAE verifies.
"""
import json
import sys

from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main() -> int:
    envelope_path, public_key_hex = sys.argv[1], sys.argv[2]
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    keyid = envelope.signatures and next(iter(envelope.signatures))
    key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public_key_hex})
    try:
        envelope.verify([key], 1)
    except Exception as error:  # any verification failure is a failed check
        print(f"DSSE verification failed: {error}", file=sys.stderr)
        return 1
    print(envelope.payload_type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
