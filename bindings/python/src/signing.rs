//! Ed25519 keys, digest signatures and signed provenance, as `aether deploy` and the server
//! use them.

use std::path::PathBuf;

use aether_core::digest::is_valid_sha256_hex;
use aether_core::signing::{self, DsseEnvelope, IN_TOTO_PAYLOAD_TYPE, SigningKey, VerifyError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{convert, errors};

/// A new Ed25519 key pair from the operating system's random source: `(seed_hex,
/// public_key_hex)`, 64 hex characters each. Keep the seed secret (e.g. in `AETHER_SIGNING_KEY`);
/// register the public key with the app.
///
/// >>> seed, public_key = aether.generate_keypair()
/// >>> len(seed), len(public_key)
/// (64, 64)
#[pyfunction]
pub fn generate_keypair(py: Python<'_>) -> PyResult<(String, String)> {
    let random = py.import("os")?.call_method1("urandom", (32,))?;
    let seed: [u8; 32] = random
        .cast::<PyBytes>()?
        .as_bytes()
        .try_into()
        .map_err(|_| PyValueError::new_err("os.urandom(32) did not return 32 bytes"))?;
    let key = SigningKey::from_seed(seed);
    Ok((hex::encode(seed), key.public_key_hex()))
}

/// Signs an artifact digest (64 lowercase hex characters) with a seed from `generate_keypair`:
/// the 128-hex-character signature `aether deploy` writes to `app.tar.gz.sig` and the server
/// checks against the app's keys. Raises `ConfigError` for a bad seed.
///
/// >>> seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
/// >>> digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// >>> signature = aether.sign(digest, seed)
/// >>> aether.verify(digest, signature, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
/// True
#[pyfunction]
pub fn sign(py: Python<'_>, digest: String, seed_hex: String) -> PyResult<String> {
    check_digest(&digest)?;
    let key = SigningKey::from_hex_seed(&seed_hex).map_err(|e| errors::key_error(py, &e))?;
    Ok(key.sign_digest(&digest))
}

/// Whether `signature_hex` is the public key's signature of `digest`. A signature that does
/// not match, or is not 128 hex characters, gives `False`; a malformed public key raises
/// `ConfigError`.
#[pyfunction]
pub fn verify(py: Python<'_>, digest: String, signature_hex: String, public_key_hex: String) -> PyResult<bool> {
    check_digest(&digest)?;
    match signing::verify_digest(&public_key_hex, &digest, &signature_hex) {
        Ok(()) => Ok(true),
        Err(VerifyError::Mismatch | VerifyError::MalformedSignature) => Ok(false),
        Err(error) => Err(errors::verify_error(py, &error)),
    }
}

/// Verifies a signed provenance file (`app.tar.gz.provenance.json`, a DSSE envelope) against
/// the public key and returns its in-toto statement as a dict. Raises `IntegrityError` when
/// the envelope does not verify, is malformed, is unsigned provenance, or does not hold an
/// in-toto statement; `ConfigError` for a malformed key; `OSError` when the file cannot be read.
///
/// >>> import json, pathlib, tempfile
/// >>> project = pathlib.Path(tempfile.mkdtemp())
/// >>> _ = (project / "package.json").write_text(json.dumps({"name": "hello", "version": "1.0.0"}))
/// >>> seed, public_key = aether.generate_keypair()
/// >>> result = aether.pack(project, install=False, signing_key=seed)
/// >>> statement = aether.verify_provenance(result.provenance, public_key)
/// >>> statement["subject"][0]["digest"]["sha256"] == result.digest
/// True
/// >>> aether.verify_provenance(result.provenance, aether.generate_keypair()[1])
/// Traceback (most recent call last):
///   ...
/// aether.IntegrityError: signature does not match
#[pyfunction]
pub fn verify_provenance(py: Python<'_>, envelope_path: PathBuf, public_key_hex: String) -> PyResult<Py<PyAny>> {
    let bytes = py.detach(|| std::fs::read(&envelope_path))?;
    let envelope: DsseEnvelope = serde_json::from_slice(&bytes).map_err(|e| {
        let message = format!("{} is not a DSSE envelope (was the build signed?): {e}", envelope_path.display());
        errors::integrity(py, &message, "malformed_envelope")
    })?;
    let payload = signing::verify_dsse(&envelope, &public_key_hex).map_err(|e| errors::verify_error(py, &e))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        let message = format!("the envelope holds {:?}, not an in-toto statement", envelope.payload_type);
        return Err(errors::integrity(py, &message, "unexpected_payload_type"));
    }
    let statement: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| errors::integrity(py, &format!("the signed statement is not JSON: {e}"), "malformed_statement"))?;
    convert::json_to_py(py, &statement)
}

fn check_digest(digest: &str) -> PyResult<()> {
    if is_valid_sha256_hex(digest) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!("{digest:?} is not a digest: 64 lowercase hex characters expected")))
    }
}
