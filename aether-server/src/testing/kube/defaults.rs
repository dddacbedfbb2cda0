//! The defaults the API server fills in before storing an object, so that what the fake serves
//! back looks like what a cluster would (replicas, strategy, a cluster IP, protocols, ...).
//! Defaulting is idempotent: an applied object and its stored form default to the same value,
//! which is how a repeated apply is recognised as a no-op.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::resource::Kind;

/// Hands out cluster IPs and node ports, never twice.
#[derive(Debug, Default)]
pub(crate) struct Allocator {
    next_ip: u32,
    next_node_port: u16,
}

impl Allocator {
    fn cluster_ip(&mut self) -> String {
        self.next_ip += 1;
        // 10.96.0.0/12 is the usual service range; .1 is the API server's own service.
        let n = self.next_ip + 1;
        format!("10.96.{}.{}", n / 256, n % 256)
    }

    fn node_port(&mut self) -> u16 {
        self.next_node_port += 1;
        30000 + self.next_node_port
    }
}

/// Fills in defaults; `old` is the stored object an update replaces, whose allocated cluster IP
/// and node ports are kept.
pub(crate) fn apply(kind: Kind, object: &mut Value, old: Option<&Value>, allocator: &mut Allocator) {
    let Some(root) = object.as_object_mut() else { return };
    match kind {
        Kind::Deployment => deployment(root),
        Kind::Service => service(root, old, allocator),
        Kind::Secret => secret(root),
        Kind::Pod => {
            if let Some(spec) = child(root, "spec") {
                pod_spec(spec);
            }
        }
        Kind::Namespace => {
            if let Some(spec) = child(root, "spec") {
                set(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = child(root, "status") {
                set(status, "phase", json!("Active"));
            }
        }
    }
}

/// Sets `key` when it is missing or null.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = value;
    }
}

/// The object at `key`, created when missing or null; `None` when something else is there.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn deployment(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = child(spec, "strategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set(rolling, "maxSurge", json!("25%"));
            set(rolling, "maxUnavailable", json!("25%"));
        }
    }
    if let Some(template_spec) = child(spec, "template").and_then(|template| child(template, "spec")) {
        pod_spec(template_spec);
    }
}

fn pod_spec(map: &mut Map<String, Value>) {
    set(map, "restartPolicy", json!("Always"));
    set(map, "terminationGracePeriodSeconds", json!(30));
    set(map, "dnsPolicy", json!("ClusterFirst"));
    set(map, "schedulerName", json!("default-scheduler"));
    set(map, "securityContext", json!({}));
    for group in ["initContainers", "containers"] {
        for container in map.get_mut(group).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(container) = container.as_object_mut() else { continue };
            let image = container.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
            set(container, "terminationMessagePath", json!("/dev/termination-log"));
            set(container, "terminationMessagePolicy", json!("File"));
            set(container, "imagePullPolicy", json!(pull_policy(&image)));
            set(container, "resources", json!({}));
            for port in container.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(port) = port.as_object_mut() {
                    set(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
fn pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains('@') {
        return "IfNotPresent";
    }
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(root: &mut Map<String, Value>, old: Option<&Value>, allocator: &mut Allocator) {
    let old_spec = old.and_then(|old| old.get("spec")).cloned().unwrap_or(Value::Null);
    set(root, "status", json!({ "loadBalancer": {} }));
    let Some(spec) = child(root, "spec") else { return };
    set(spec, "type", json!("ClusterIP"));
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_owned();
    if kind != "ExternalName" {
        let ip = old_spec.get("clusterIP").cloned().filter(|ip| !ip.is_null());
        set(spec, "clusterIP", ip.unwrap_or_else(|| json!(allocator.cluster_ip())));
        let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
        set(spec, "clusterIPs", json!([ip]));
        set(spec, "ipFamilies", json!(["IPv4"]));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    set(spec, "sessionAffinity", json!("None"));
    let old_ports = old_spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(port) = port.as_object_mut() else { continue };
        set(port, "protocol", json!("TCP"));
        let number = port.get("port").cloned().unwrap_or(Value::Null);
        set(port, "targetPort", number.clone());
        if kind == "NodePort" || kind == "LoadBalancer" {
            let kept =
                old_ports.iter().find(|old| old.get("port") == Some(&number)).and_then(|old| old.get("nodePort"));
            let node_port = kept.cloned().unwrap_or_else(|| json!(allocator.node_port()));
            set(port, "nodePort", node_port);
        }
    }
}

/// `type: Opaque`, and `stringData` folded into `data` as the server does.
fn secret(root: &mut Map<String, Value>) {
    set(root, "type", json!("Opaque"));
    if let Some(Value::Object(strings)) = root.remove("stringData")
        && let Some(data) = child(root, "data")
    {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default().to_owned();
            data.insert(key, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaulting_twice_changes_nothing() {
        let mut allocator = Allocator::default();
        let mut service = json!({ "spec": { "ports": [{ "port": 80 }] } });
        apply(Kind::Service, &mut service, None, &mut allocator);
        let once = service.clone();
        apply(Kind::Service, &mut service, Some(&once), &mut allocator);
        assert_eq!(service, once);
        assert_eq!(service.pointer("/spec/ports/0/targetPort"), Some(&json!(80)));

        let mut deployment =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "a", "image": "node:20" }] } } } });
        apply(Kind::Deployment, &mut deployment, None, &mut allocator);
        let once = deployment.clone();
        apply(Kind::Deployment, &mut deployment, None, &mut allocator);
        assert_eq!(deployment, once);
        assert_eq!(deployment.pointer("/spec/strategy/rollingUpdate/maxSurge"), Some(&json!("25%")));
        assert_eq!(
            deployment.pointer("/spec/template/spec/containers/0/imagePullPolicy"),
            Some(&json!("IfNotPresent"))
        );
    }

    #[test]
    fn string_data_lands_in_data() {
        let mut secret = json!({ "stringData": { "token": "abc" } });
        apply(Kind::Secret, &mut secret, None, &mut Allocator::default());
        assert_eq!(secret, json!({ "type": "Opaque", "data": { "token": "YWJj" } }));
    }
}
