//! Field conversions for the CycloneDX document: package URLs, integrity hashes, licenses,
//! timestamps and the serial number. Kept apart from the document assembly so each rule can be
//! unit-tested on its own.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::prelude::{SpdxExpression, SpdxIdentifier};
use uuid::Uuid;

/// Namespace of the UUID v5 serial numbers: `uuid5(NAMESPACE_URL,
/// "https://github.com/aether-deploy/aether/sbom/serial-number")`. Never change it: the serial
/// number of an artifact's SBOM must stay the same across Aether releases, so that regenerating
/// the SBOM of the same artifact yields the same document identity.
pub(super) const SERIAL_NAMESPACE: Uuid = Uuid::from_u128(0xbe25_4a75_2de6_51f8_8640_3d4f_d85c_c911);

/// SPDX ids that the `spdx` crate behind `cyclonedx-bom` (license list 3.29) accepts but the
/// `spdx.schema.json` enum of the official CycloneDX schema (as bundled by
/// cyclonedx-python-lib 11.12) does not. Emitting them as `license.id` fails strict schema
/// validation, so they are written as SPDX expressions instead (the schema does not restrict
/// expression strings). `NOASSERTION` is not listed: it means "unknown" and is left out.
const IDS_MISSING_FROM_SCHEMA: &[&str] = &[
    "BSD-2-Clause-pos-unchanged",
    "BSD-3-Clause-OpenWebUI",
    "BSD-Source-Code-no-disclaimer",
    "BSD-Source-alt-GPL",
    "BSD-ask-to-endorse",
    "Brian-Gladman-3-Clause-no-conversion",
    "Bugroff",
    "CC-BY-NC-3.0-IGO",
    "FDK-MPEG-H",
    "GFDL-1.1-invariants",
    "GFDL-1.1-no-invariants",
    "GFDL-1.2-invariants",
    "GFDL-1.2-no-invariants",
    "GFDL-1.3-invariants",
    "GFDL-1.3-no-invariants",
    "Hippocratic-3.0-core",
    "Informatica",
    "MVT-1.1",
    "atc-game",
];

/// Splits an npm name into its scope (`@scope`) and the name within it, as npm's CycloneDX
/// tools do (group `@scope`, name `pkg`). Names that only look scoped stay whole.
pub(super) fn split_scope(name: &str) -> (Option<&str>, &str) {
    if let Some(rest) = name.strip_prefix('@')
        && let Some((scope, local)) = rest.split_once('/')
        && !scope.is_empty()
        && !local.is_empty()
    {
        return (Some(&name[..=scope.len()]), local);
    }
    (None, name)
}

/// The package URL of an npm package: `pkg:npm/%40scope/name@1.2.3` (the scope's `@` is
/// percent-encoded, as the purl spec requires for npm). An empty version is omitted.
pub(super) fn npm_purl(name: &str, version: &str) -> String {
    let (scope, local) = split_scope(name);
    let mut purl = String::from("pkg:npm/");
    if let Some(scope) = scope {
        purl.push_str(&percent_encode(scope));
        purl.push('/');
    }
    purl.push_str(&percent_encode(local));
    if !version.is_empty() {
        purl.push('@');
        purl.push_str(&percent_encode(version));
    }
    purl
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so `@`, `/`, `+` and non-ASCII
/// bytes can never be mistaken for purl separators.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The lowercase hex SHA-512 of a Subresource Integrity string (`sha512-<base64>`, possibly
/// among other space-separated hashes and with `?options`). Other algorithms and malformed
/// values give `None`: a hash is only worth reporting when it is exactly what npm verified.
pub(super) fn sha512_hex(integrity: &str) -> Option<String> {
    integrity.split_whitespace().find_map(|token| {
        let encoded = token.strip_prefix("sha512-")?;
        let encoded = encoded.split_once('?').map_or(encoded, |(hash, _options)| hash);
        let bytes = STANDARD.decode(encoded).ok()?;
        (bytes.len() == 64).then(|| hex::encode(bytes))
    })
}

/// The CycloneDX license of a package: an SPDX id when it is one the schema knows, an SPDX
/// expression when it parses as one (`MIT OR Apache-2.0`, `Apache-2.0+`), otherwise a named license
/// (`SEE LICENSE IN ...`, `UNLICENSED`, misspellings), so no information is dropped.
pub(super) fn licenses(license: &str) -> Option<Licenses> {
    let license = license.trim();
    if license.is_empty() || license == "NOASSERTION" {
        return None;
    }
    let choice = if is_schema_spdx_id(license) {
        LicenseChoice::License(License::license_id(license))
    } else if let Ok(expression) = SpdxExpression::try_from(license.to_owned()) {
        LicenseChoice::Expression(expression)
    } else {
        LicenseChoice::License(License::named_license(license))
    };
    Some(Licenses(vec![choice]))
}

/// `spdx::license_id` ignores a trailing `+`, so `Apache-2.0+` would pass as an id and then fail
/// the schema's id enum; such values must go out as expressions.
fn is_schema_spdx_id(license: &str) -> bool {
    !license.contains('+')
        && !IDS_MISSING_FROM_SCHEMA.contains(&license)
        && SpdxIdentifier::try_from(license.to_owned()).is_ok()
}

/// `timestamp_unix` as RFC 3339 UTC; `None` outside the years 0000-9999.
pub(super) fn rfc3339_utc(timestamp_unix: i64) -> Option<String> {
    crate::timestamp::rfc3339_seconds(timestamp_unix)
}

/// The serial number's UUID: v5 of the artifact digest, so the same artifact always gets the
/// same SBOM identity (and the output stays byte-identical).
pub(super) fn serial_uuid(artifact_digest: &str) -> Uuid {
    Uuid::new_v5(&SERIAL_NAMESPACE, artifact_digest.as_bytes())
}
