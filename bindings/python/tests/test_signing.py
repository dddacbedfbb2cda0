"""Keys, signatures and signed provenance, cross-checked with an independent Ed25519
implementation (PyNaCl, libsodium)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Dict

import nacl.exceptions
import nacl.signing
import pytest

import aether
from conftest import PUBLIC_KEY, SEED

DIGEST = hashlib.sha256(b"an artifact").hexdigest()


def nacl_key(seed_hex: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes.fromhex(seed_hex))


def nacl_verifies(public_key_hex: str, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(bytes.fromhex(public_key_hex)).verify(message, signature)
        return True
    except nacl.exceptions.BadSignatureError:
        return False


def flipped(hex_text: str, index: int) -> str:
    """`hex_text` with one bit of byte `index` flipped."""
    raw = bytearray(bytes.fromhex(hex_text))
    raw[index] ^= 0x01
    return raw.hex()


def test_generated_keys_are_ed25519_key_pairs() -> None:
    seed, public_key = aether.generate_keypair()
    assert len(seed) == len(public_key) == 64
    assert nacl_key(seed).verify_key.encode().hex() == public_key
    assert aether.generate_keypair()[0] != seed, "every call draws a new seed"
    assert nacl_key(SEED).verify_key.encode().hex() == PUBLIC_KEY


def test_signatures_round_trip_between_aether_and_nacl() -> None:
    seed, public_key = aether.generate_keypair()
    signature = aether.sign(DIGEST, seed)
    assert len(signature) == 128
    # The signed message is the ASCII hex digest, as the server checks it.
    assert nacl_verifies(public_key, DIGEST.encode(), bytes.fromhex(signature))
    assert signature == nacl_key(seed).sign(DIGEST.encode()).signature.hex(), "Ed25519 is deterministic"
    assert aether.verify(DIGEST, signature, public_key)
    from_nacl = nacl_key(seed).sign(DIGEST.encode()).signature.hex()
    assert aether.verify(DIGEST, from_nacl, public_key)


def test_any_tampering_fails_verification() -> None:
    seed, public_key = aether.generate_keypair()
    signature = aether.sign(DIGEST, seed)
    for index in range(0, 64, 7):
        bad = flipped(signature, index)
        assert not aether.verify(DIGEST, bad, public_key)
        assert not nacl_verifies(public_key, DIGEST.encode(), bytes.fromhex(bad))
    other_digest = ("1" if DIGEST[0] == "0" else "0") + DIGEST[1:]
    assert not aether.verify(other_digest, signature, public_key)
    assert not aether.verify(DIGEST, signature, aether.generate_keypair()[1])
    assert not aether.verify(DIGEST, "zz" * 64, public_key), "a malformed signature does not verify"
    assert not aether.verify(DIGEST, signature[:-2], public_key)


def test_bad_keys_and_digests_raise() -> None:
    with pytest.raises(aether.ConfigError) as bad_seed:
        aether.sign(DIGEST, "abcd")
    assert bad_seed.value.code == "invalid_signing_key"
    with pytest.raises(aether.ConfigError) as bad_public:
        aether.verify(DIGEST, "00" * 64, "not a key")
    assert bad_public.value.code == "invalid_public_key"
    with pytest.raises(ValueError, match="not a digest"):
        aether.sign("sha256:" + DIGEST, SEED)
    with pytest.raises(ValueError):
        aether.verify(DIGEST.upper(), "00" * 64, PUBLIC_KEY)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding, written from the DSSE specification."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


@pytest.fixture
def signed_provenance(sample_app: Path, tmp_path: Path) -> aether.PackResult:
    return aether.pack(sample_app, tmp_path / "out", install=False, signing_key=SEED, source_date_epoch=0)


def test_provenance_verifies_and_names_the_artifact(signed_provenance: aether.PackResult) -> None:
    assert signed_provenance.provenance is not None
    statement = aether.verify_provenance(signed_provenance.provenance, PUBLIC_KEY)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": signed_provenance.digest}}]
    assert signed_provenance.manifest is not None
    byproduct = statement["predicate"]["runDetails"]["byproducts"][0]
    assert byproduct["digest"]["sha256"] == aether.digest_file(signed_provenance.manifest)

    # The envelope verifies with an independent implementation too, and holds that statement.
    envelope = json.loads(signed_provenance.provenance.read_text())
    payload = base64.b64decode(envelope["payload"])
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert nacl_verifies(PUBLIC_KEY, pae(envelope["payloadType"], payload), signature)
    assert json.loads(payload) == statement


def write_envelope(path: Path, envelope: Dict[str, Any]) -> Path:
    path.write_text(json.dumps(envelope))
    return path


def test_provenance_that_does_not_verify_raises_integrity_error(
    signed_provenance: aether.PackResult, tmp_path: Path
) -> None:
    assert signed_provenance.provenance is not None
    envelope = json.loads(signed_provenance.provenance.read_text())

    with pytest.raises(aether.IntegrityError) as wrong_key:
        aether.verify_provenance(signed_provenance.provenance, aether.generate_keypair()[1])
    assert wrong_key.value.code == "signature_mismatch"

    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    with pytest.raises(aether.IntegrityError) as tampered:
        aether.verify_provenance(write_envelope(tmp_path / "forged.json", forged), PUBLIC_KEY)
    assert tampered.value.code == "signature_mismatch"

    with pytest.raises(aether.IntegrityError) as not_base64:
        aether.verify_provenance(write_envelope(tmp_path / "bad.json", dict(envelope, payload="***")), PUBLIC_KEY)
    assert not_base64.value.code == "malformed_envelope"

    # Correctly signed, but not an in-toto statement.
    payload = b"hello"
    sig = nacl_key(SEED).sign(pae("text/plain", payload)).signature
    other = {"payloadType": "text/plain", "payload": base64.b64encode(payload).decode(),
             "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}
    with pytest.raises(aether.IntegrityError) as wrong_type:
        aether.verify_provenance(write_envelope(tmp_path / "other.json", other), PUBLIC_KEY)
    assert wrong_type.value.code == "unexpected_payload_type"

    with pytest.raises(aether.ConfigError):
        aether.verify_provenance(signed_provenance.provenance, "not a key")
    with pytest.raises(FileNotFoundError):
        aether.verify_provenance(tmp_path / "missing.json", PUBLIC_KEY)


def test_unsigned_provenance_is_not_an_envelope(sample_app: Path, tmp_path: Path) -> None:
    unsigned = aether.pack(sample_app, tmp_path / "out", install=False)
    assert unsigned.signature is None and unsigned.provenance is not None
    with pytest.raises(aether.IntegrityError) as error:
        aether.verify_provenance(unsigned.provenance, PUBLIC_KEY)
    assert error.value.code == "malformed_envelope"
    assert "was the build signed" in str(error.value)
