//! What the API server checks before it stores an object: that the body decodes into the
//! resource's `k8s-openapi` type (fields that type does not know are reported the way
//! `fieldValidation` asks), that names, labels and the workload's own fields are valid, and
//! that an update leaves immutable fields alone.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, Cause};
use super::resource::Kind;
use super::selector::LabelMatcher;

/// The `fieldValidation` query parameter: what to do with fields the type does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Refuse the request.
    Strict,
    /// Drop the fields and answer with a `Warning` header (the server's default).
    Warn,
    /// Drop the fields silently.
    Ignore,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("" | "Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got \"{other}\""
            ))),
        }
    }
}

/// Decodes a request body as `kind` and returns it as the typed object serialises, with the
/// warnings to send. `require_type`: apply bodies must carry `apiVersion` and `kind`.
pub(crate) fn decode(
    kind: Kind,
    body: Value,
    validation: FieldValidation,
    require_type: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!("the body of a {} must be a JSON object", kind.name())));
    }
    for (field, expected) in [("apiVersion", kind.api_version()), ("kind", kind.name())] {
        match body.get(field).and_then(Value::as_str) {
            None if require_type => {
                return Err(ApiError::bad_request(format!("Object '{field}' is missing in the {} body", kind.name())));
            }
            Some(found) if found != expected => {
                return Err(ApiError::bad_request(format!(
                    "the {field} of the provided object ({found}) does not match the {field} of the request ({expected})"
                )));
            }
            _ => {}
        }
    }
    let decoded = match kind {
        Kind::Namespace => round_trip::<Namespace>(&body),
        Kind::Deployment => round_trip::<Deployment>(&body),
        Kind::Service => round_trip::<Service>(&body),
        Kind::Secret => round_trip::<Secret>(&body),
        Kind::Pod => round_trip::<Pod>(&body),
    }
    .map_err(|error| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {error}",
            kind.name(),
            kind.api_version(),
            kind.name()
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&body, &decoded, "", &mut unknown);
    let messages: Vec<String> = unknown.iter().map(|path| format!("unknown field \"{path}\"")).collect();
    match validation {
        FieldValidation::Strict if !messages.is_empty() => {
            Err(ApiError::bad_request(format!("strict decoding error: {}", messages.join(", "))))
        }
        FieldValidation::Warn => Ok((decoded, messages)),
        _ => Ok((decoded, Vec::new())),
    }
}

fn round_trip<K: Serialize + DeserializeOwned>(body: &Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<K>(body.clone())?)
}

/// Paths present (and not null) in `input` but missing from `known`, its typed round trip.
fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input.iter().filter(|(_, value)| !value.is_null()) {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match known.get(key) {
                    Some(inner) => unknown_fields(value, inner, &at, out),
                    None => out.push(at),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (index, (value, inner)) in input.iter().zip(known).enumerate() {
                unknown_fields(value, inner, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// Validates a decoded object, and against `old` when it replaces it.
pub(crate) fn validate(kind: Kind, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut causes = Vec::new();
    validate_metadata(kind, object, &mut causes);
    let typed = |error: serde_json::Error| ApiError::bad_request(error.to_string());
    match kind {
        Kind::Deployment => validate_deployment(&serde_json::from_value(object.clone()).map_err(typed)?, &mut causes),
        Kind::Service => validate_service(&serde_json::from_value(object.clone()).map_err(typed)?, &mut causes),
        Kind::Secret => validate_secret(&serde_json::from_value(object.clone()).map_err(typed)?, &mut causes),
        Kind::Pod => {
            let pod: Pod = serde_json::from_value(object.clone()).map_err(typed)?;
            match &pod.spec {
                Some(spec) => validate_pod_spec(spec, "spec", &mut causes),
                None => causes.push(Cause::required("spec.containers")),
            }
        }
        Kind::Namespace => {}
    }
    if let Some(old) = old {
        immutable_fields(kind, old, object, &mut causes);
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(kind, name, &causes)) }
}

fn validate_metadata(kind: Kind, object: &Value, causes: &mut Vec<Cause>) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else if kind == Kind::Service && !(is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())) {
        causes.push(Cause::invalid("metadata.name", name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"));
    } else if kind.name_is_label() && !is_dns_label(name) {
        causes.push(Cause::invalid("metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
    } else if !is_dns_subdomain(name) {
        causes.push(Cause::invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
    }
    validate_labels(&string_map(object.pointer("/metadata/labels")), "metadata.labels", causes);
    let annotations = string_map(object.pointer("/metadata/annotations"));
    let mut size = 0;
    for (key, value) in &annotations {
        size += key.len() + value.len();
        if !is_label_key(key) {
            causes.push(Cause::invalid("metadata.annotations", key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
    if size > 256 * 1024 {
        causes.push(Cause::invalid("metadata.annotations", "", "Too long: must have at most 262144 bytes"));
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

pub(crate) fn validate_labels(labels: &BTreeMap<String, String>, at: &str, causes: &mut Vec<Cause>) {
    for (key, value) in labels {
        if !is_label_key(key) {
            causes.push(Cause::invalid(at, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        if value.len() > 63 {
            causes.push(Cause::invalid(at, value, "must be no more than 63 characters"));
        } else if !is_label_value(value) {
            causes.push(Cause::invalid(at, value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
}

fn validate_deployment(deployment: &Deployment, causes: &mut Vec<Cause>) {
    let spec = &deployment.spec;
    if spec.replicas.is_some_and(|replicas| replicas < 0) {
        causes.push(Cause::invalid(
            "spec.replicas",
            spec.replicas.unwrap_or_default(),
            "must be greater than or equal to 0",
        ));
    }
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    validate_labels(&labels, "spec.template.metadata.labels", causes);
    match LabelMatcher::from_label_selector(&spec.selector) {
        Err(message) => causes.push(Cause::invalid("spec.selector", "", &message)),
        Ok(selector) if selector.is_empty() => {
            causes.push(Cause::invalid("spec.selector", "null", "empty selector is invalid for deployment"));
        }
        Ok(selector) if !selector.matches_labels(&labels) => causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            format!("{labels:?}"),
            "`selector` does not match template `labels`",
        )),
        Ok(_) => {}
    }
    match &spec.template.spec {
        Some(pod) => {
            if pod.restart_policy.as_deref().is_some_and(|policy| policy != "Always") {
                causes.push(Cause::invalid(
                    "spec.template.spec.restartPolicy",
                    pod.restart_policy.as_deref().unwrap_or_default(),
                    "supported values: \"Always\"",
                ));
            }
            validate_pod_spec(pod, "spec.template.spec", causes);
        }
        None => causes.push(Cause::required("spec.template.spec.containers")),
    }
}

fn validate_pod_spec(spec: &PodSpec, at: &str, causes: &mut Vec<Cause>) {
    if spec.containers.is_empty() {
        causes.push(Cause::required(format!("{at}.containers")));
    }
    let mut volumes = BTreeSet::new();
    for (index, volume) in spec.volumes.iter().flatten().enumerate() {
        if !is_dns_label(&volume.name) {
            causes.push(Cause::invalid(format!("{at}.volumes[{index}].name"), &volume.name, "must be a DNS label"));
        } else if !volumes.insert(volume.name.as_str()) {
            causes.push(Cause::duplicate(format!("{at}.volumes[{index}].name"), &volume.name));
        }
    }
    let mut names = BTreeSet::new();
    let groups =
        [("initContainers", spec.init_containers.as_deref().unwrap_or_default()), ("containers", &spec.containers)];
    for (group, containers) in groups {
        for (index, container) in containers.iter().enumerate() {
            let at = format!("{at}.{group}[{index}]");
            if container.name.is_empty() {
                causes.push(Cause::required(format!("{at}.name")));
            } else if !is_dns_label(&container.name) {
                causes.push(Cause::invalid(format!("{at}.name"), &container.name, "must be a DNS label"));
            } else if !names.insert(container.name.as_str()) {
                causes.push(Cause::duplicate(format!("{at}.name"), &container.name));
            }
            if container.image.as_deref().is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{at}.image")));
            }
            for (port_index, port) in container.ports.iter().flatten().enumerate() {
                if !(1..=65535).contains(&port.container_port) {
                    causes.push(Cause::invalid(
                        format!("{at}.ports[{port_index}].containerPort"),
                        port.container_port,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            for (mount_index, mount) in container.volume_mounts.iter().flatten().enumerate() {
                if !volumes.contains(mount.name.as_str()) {
                    causes.push(Cause::not_found(format!("{at}.volumeMounts[{mount_index}].name"), &mount.name));
                }
                if mount.mount_path.is_empty() {
                    causes.push(Cause::required(format!("{at}.volumeMounts[{mount_index}].mountPath")));
                }
            }
            for (env_index, env) in container.env.iter().flatten().enumerate() {
                if env.name.is_empty() {
                    causes.push(Cause::required(format!("{at}.env[{env_index}].name")));
                }
            }
        }
    }
}

fn validate_service(service: &Service, causes: &mut Vec<Cause>) {
    let Some(spec) = &service.spec else {
        causes.push(Cause::required("spec.ports"));
        return;
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&kind) {
        causes.push(Cause::invalid(
            "spec.type",
            kind,
            "supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ));
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && kind != "ExternalName" && spec.cluster_ip.as_deref() != Some("None") {
        causes.push(Cause::required("spec.ports"));
    }
    let mut names = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{index}]");
        if !(1..=65535).contains(&port.port) {
            causes.push(Cause::invalid(format!("{at}.port"), port.port, "must be between 1 and 65535, inclusive"));
        }
        match port.name.as_deref() {
            None | Some("") if ports.len() > 1 => causes.push(Cause::required(format!("{at}.name"))),
            Some(name) if !name.is_empty() && !names.insert(name) => {
                causes.push(Cause::duplicate(format!("{at}.name"), name))
            }
            _ => {}
        }
        match &port.target_port {
            Some(IntOrString::Int(target)) if !(1..=65535).contains(target) => {
                causes.push(Cause::invalid(
                    format!("{at}.targetPort"),
                    target,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            Some(IntOrString::String(target)) if !is_port_name(target) => {
                causes.push(Cause::invalid(
                    format!("{at}.targetPort"),
                    target,
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters",
                ));
            }
            _ => {}
        }
    }
    validate_labels(&spec.selector.clone().unwrap_or_default(), "spec.selector", causes);
}

fn validate_secret(secret: &Secret, causes: &mut Vec<Cause>) {
    let keys =
        secret.data.iter().flat_map(|data| data.keys()).chain(secret.string_data.iter().flat_map(|data| data.keys()));
    for key in keys {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !valid {
            causes.push(Cause::invalid(
                format!("data[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
    }
    let size: usize = secret.data.iter().flatten().map(|(key, value)| key.len() + value.0.len()).sum();
    if size > 1024 * 1024 {
        causes.push(Cause::invalid("data", "", "Too long: must have at most 1048576 bytes"));
    }
}

fn immutable_fields(kind: Kind, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let changed = |pointer: &str| old.pointer(pointer) != new.pointer(pointer);
    match kind {
        Kind::Deployment if changed("/spec/selector") => causes.push(Cause::immutable("spec.selector")),
        Kind::Service if changed("/spec/clusterIP") => causes.push(Cause::immutable("spec.clusterIP")),
        Kind::Secret => {
            if old.pointer("/immutable") == Some(&Value::Bool(true)) && changed("/data") {
                causes.push(Cause {
                    field: "data".into(),
                    reason: "FieldValueForbidden",
                    message: "Forbidden: field is immutable when `immutable` is set".into(),
                });
            }
            if changed("/type") {
                causes.push(Cause::immutable("type"));
            }
        }
        Kind::Pod => {
            let without_images = |pod: &Value| {
                let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
                for group in ["containers", "initContainers"] {
                    for container in spec.get_mut(group).and_then(Value::as_array_mut).into_iter().flatten() {
                        if let Some(container) = container.as_object_mut() {
                            container.remove("image");
                        }
                    }
                }
                spec
            };
            if without_images(old) != without_images(new) {
                causes.push(Cause { field: "spec".into(), reason: "FieldValueForbidden", message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`".into() });
            }
        }
        _ => {}
    }
}

/// A DNS-1123 label: at most 63 lower-case alphanumerics or '-', alphanumeric at both ends.
pub(crate) fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// `[prefix/]name`: a DNS subdomain prefix and a name of at most 63 characters.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Empty, or at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
pub(crate) fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// An IANA service name, as named ports use.
fn is_port_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_by_path() {
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "s", "labelz": { "a": "b" } },
            "data": { "k": "dmFsdWU=" }, "extra": 1
        });
        let (decoded, warnings) = decode(Kind::Secret, body.clone(), FieldValidation::Warn, true).unwrap();
        assert_eq!(warnings, ["unknown field \"extra\"", "unknown field \"metadata.labelz\""]);
        assert!(decoded.get("extra").is_none());
        let strict = decode(Kind::Secret, body, FieldValidation::Strict, true).unwrap_err();
        assert_eq!((strict.code, strict.reason), (400, "BadRequest"));
    }

    #[test]
    fn label_syntax() {
        assert!(is_label_value("sha256-0123") && is_label_value("") && is_label_key("app.kubernetes.io/name"));
        assert!(!is_label_value("sha256:0123") && !is_label_value(&"a".repeat(64)) && !is_label_key("a/b/c"));
    }
}
