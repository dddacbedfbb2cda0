//! Which Python exception each Rust error becomes: the one place that decides it.
//!
//! Every exception is an [`AetherError`] with a `code` attribute (the stable code the CLI prints
//! in its JSON errors); [`ApiError`] adds the server's `status` and its envelope's `code`.

use aether_core::signing::{KeyError, VerifyError};
use aether_sdk::Error;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{PyTypeInfo, create_exception};

create_exception!(
    aether,
    AetherError,
    PyException,
    "Base class of every error the aether module raises. `code` is a stable, machine-readable code."
);
create_exception!(
    aether,
    ConfigError,
    AetherError,
    "Settings are wrong: a key, a variable, config.toml, the server URL, or a token over plain HTTP."
);
create_exception!(
    aether,
    PackError,
    AetherError,
    "The build failed: no package.json, npm failed, a symlink leaves the tree, files cannot be read or written."
);
create_exception!(
    aether,
    ApiError,
    AetherError,
    "The server refused the request: `status` is the HTTP status, `code` and `message` its error envelope."
);
create_exception!(
    aether,
    NetworkError,
    AetherError,
    "The server could not be reached, or answered something that is not its API."
);
create_exception!(
    aether,
    IntegrityError,
    AetherError,
    "A signature or an envelope does not verify, or is not what it claims to be."
);

/// The Python exception for an SDK error, with the message of the whole error chain.
pub fn sdk_error(py: Python<'_>, error: &Error) -> PyErr {
    let message = aether_sdk::error::error_chain(error);
    match error {
        Error::Api { status, code, message: server_message } => {
            let err = raise::<ApiError>(py, &message, code);
            let value = err.value(py);
            // Setting attributes on a fresh exception instance cannot fail.
            let _ = value.setattr("status", *status);
            let _ = value.setattr("message", server_message);
            err
        }
        Error::Http { .. } | Error::Protocol { .. } | Error::StreamBroken { .. } => {
            raise::<NetworkError>(py, &message, error.code())
        }
        Error::SigningKey { .. }
        | Error::SigningKeyFile { .. }
        | Error::Config { .. }
        | Error::InvalidVariable { .. }
        | Error::InvalidUrl { .. }
        | Error::InsecureTransport { .. }
        | Error::ClientSetup { .. } => raise::<ConfigError>(py, &message, error.code()),
        Error::Usage { .. } => raise::<AetherError>(py, &message, error.code()),
        Error::Project(_)
        | Error::Selection(_)
        | Error::Pack(_)
        | Error::Lockfile(_)
        | Error::Sbom(_)
        | Error::CommandFailed { .. }
        | Error::CommandNotFound { .. }
        | Error::Provenance { .. }
        | Error::Io { .. } => raise::<PackError>(py, &message, error.code()),
    }
}

/// A key that cannot be parsed is a configuration error, as it is for the CLI.
pub fn key_error(py: Python<'_>, error: &KeyError) -> PyErr {
    let code = match error {
        KeyError::InvalidPublicKey => "invalid_public_key",
        KeyError::WrongLength { .. } | KeyError::NotHex => "invalid_signing_key",
    };
    raise::<ConfigError>(py, &error.to_string(), code)
}

/// A signature or envelope that fails verification.
pub fn verify_error(py: Python<'_>, error: &VerifyError) -> PyErr {
    let code = match error {
        VerifyError::Key(key) => return key_error(py, key),
        VerifyError::Mismatch => "signature_mismatch",
        VerifyError::MalformedSignature => "malformed_signature",
        VerifyError::MalformedEnvelope(_) => "malformed_envelope",
    };
    raise::<IntegrityError>(py, &error.to_string(), code)
}

/// An integrity failure found by the bindings themselves (e.g. an envelope of the wrong type).
pub fn integrity(py: Python<'_>, message: &str, code: &str) -> PyErr {
    raise::<IntegrityError>(py, message, code)
}

fn raise<T: PyTypeInfo>(py: Python<'_>, message: &str, code: &str) -> PyErr {
    let err = PyErr::from_type(T::type_object(py), message.to_owned());
    let _ = err.value(py).setattr("code", code);
    err
}
