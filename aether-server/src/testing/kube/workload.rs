//! What the deployment controller and the kubelet would do, on the test's command: pods for a
//! deployment's current template (named `<deployment>-<template hash>-<suffix>`, labelled with
//! the template's labels plus `pod-template-hash`), their container states for each scenario,
//! and the deployment status computed from them. The fake has no controller loop of its own:
//! statuses change only when a test drives them.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::cluster::{Cluster, now_seconds, object_name};
use super::error::ApiError;
use super::resource::Kind;
use super::store::Store;
use super::writes::Target;

const CONTROLLER: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";
/// The characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What a test makes happen to a deployment's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Pods created and pending: init containers running, containers not started.
    Progressing,
    /// Every pod running and ready; pods of older templates gone.
    Ready,
    /// The first init container exited 1 with this termination message.
    InitFailed(String),
    /// The container running this image (or the first container) cannot pull it.
    ImagePullBackOff(String),
    /// The first container keeps exiting; its previous instance printed these lines.
    CrashLoop(Vec<String>),
    /// The rollout of the current template timed out.
    DeadlineExceeded,
}

/// Bookkeeping per deployment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollout {
    /// Template hashes in the order they were first driven; revision = position + 1.
    hashes: Vec<String>,
    deadline_exceeded: Option<String>,
}

/// `pod-template-hash` of a pod template.
pub(crate) fn template_hash(template: &Value) -> String {
    generated_name(&template.to_string(), 10)
}

/// `length` name characters derived from `seed`.
fn generated_name(seed: &str, length: usize) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    digest.iter().take(length).map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()])).collect()
}

/// Names of the pods that belong to `deployment` (through a ReplicaSet `<deployment>-<hash>`).
pub(crate) fn pods_of(store: &Store, namespace: &str, deployment: &str) -> Vec<String> {
    let prefix = format!("{deployment}-");
    store
        .list(Kind::Pod, Some(namespace))
        .filter(|pod| {
            pod.pointer("/metadata/ownerReferences/0")
                .filter(|owner| owner.get("kind").and_then(Value::as_str) == Some("ReplicaSet"))
                .and_then(|owner| owner.get("name").and_then(Value::as_str))
                .and_then(|owner| owner.strip_prefix(&prefix))
                .is_some_and(|hash| !hash.contains('-'))
        })
        .filter_map(object_name)
        .collect()
}

impl Cluster {
    /// Plays `scenario` on the deployment's pods and updates its status.
    pub fn drive(&mut self, namespace: &str, name: &str, scenario: Scenario) -> Result<(), ApiError> {
        let deployment = self
            .store
            .get(Kind::Deployment, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(Kind::Deployment, name))?;
        let hash = template_hash(&deployment["spec"]["template"]);
        let rollout = self.rollouts.entry((namespace.to_owned(), name.to_owned())).or_default();
        if !rollout.hashes.contains(&hash) {
            rollout.hashes.push(hash.clone());
        }
        match &scenario {
            Scenario::DeadlineExceeded => rollout.deadline_exceeded = Some(hash.clone()),
            Scenario::Ready => rollout.deadline_exceeded = None,
            _ => {}
        }
        let pods = self.ensure_pods(namespace, name, &deployment, &hash)?;
        for pod in &pods {
            self.play(namespace, pod, &scenario)?;
        }
        if scenario == Scenario::Ready {
            let current: BTreeSet<&String> = pods.iter().collect();
            for old in pods_of(&self.store, namespace, name).into_iter().filter(|pod| !current.contains(pod)) {
                self.delete_pod(namespace, &old);
            }
        }
        self.update_deployment_status(namespace, name, &hash)
    }

    /// The current template's pods, created (pending) up to `spec.replicas`, extras removed.
    pub fn ensure_pods(
        &mut self,
        namespace: &str,
        name: &str,
        deployment: &Value,
        hash: &str,
    ) -> Result<Vec<String>, ApiError> {
        let replicas =
            usize::try_from(deployment.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)).unwrap_or(0);
        let replica_set = format!("{name}-{hash}");
        let mut pods: Vec<String> = pods_of(&self.store, namespace, name)
            .into_iter()
            .filter(|pod| pod.strip_prefix(&replica_set).is_some_and(|rest| rest.starts_with('-')))
            .collect();
        for extra in pods.split_off(replicas.min(pods.len())) {
            self.delete_pod(namespace, &extra);
        }
        let mut index = 0u32;
        while pods.len() < replicas {
            index += 1;
            let pod_name = format!("{replica_set}-{}", generated_name(&format!("{replica_set}/{index}"), 5));
            if self.store.get(Kind::Pod, namespace, &pod_name).is_some() {
                continue;
            }
            let pod = new_pod(deployment, &replica_set, hash, &pod_name);
            let now = now_seconds();
            self.store.create(target(Kind::Pod, namespace, &pod_name, CONTROLLER, None, &now), pod)?;
            pods.push(pod_name);
        }
        Ok(pods)
    }

    fn play(&mut self, namespace: &str, pod: &str, scenario: &Scenario) -> Result<(), ApiError> {
        if let Scenario::CrashLoop(lines) = scenario {
            let container = super::pod_status::main_container(&self.store, namespace, pod).unwrap_or_default();
            let lines = lines
                .iter()
                .map(|text| super::logs::LogLine { time: super::cluster::now(), text: text.clone() })
                .collect();
            self.logs.restart(namespace, pod, &container, Some(lines));
        }
        if *scenario == Scenario::DeadlineExceeded {
            return Ok(());
        }
        let now = now_seconds();
        let mut failure = None;
        self.store.update_with(target(Kind::Pod, namespace, pod, KUBELET, Some("status"), &now), |object| {
            if let Err(message) = super::pod_status::apply(object, scenario, &now) {
                failure = Some(message);
            }
        })?;
        failure.map_or(Ok(()), |message| Err(ApiError::bad_request(message)))
    }

    fn update_deployment_status(&mut self, namespace: &str, name: &str, hash: &str) -> Result<(), ApiError> {
        let rollout = self.rollouts.get(&(namespace.to_owned(), name.to_owned())).cloned().unwrap_or_default();
        let revision = rollout.hashes.iter().position(|h| h == hash).map_or(1, |position| position + 1);
        let pods: Vec<Value> = pods_of(&self.store, namespace, name)
            .iter()
            .filter_map(|pod| self.store.get(Kind::Pod, namespace, pod).cloned())
            .collect();
        let deadline = rollout.deadline_exceeded.as_deref() == Some(hash);
        let now = now_seconds();
        self.store.update_with(target(Kind::Deployment, namespace, name, CONTROLLER, None, &now), |deployment| {
            if let Some(metadata) = deployment.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
                if let Some(annotations) = annotations.as_object_mut() {
                    annotations.insert("deployment.kubernetes.io/revision".into(), json!(revision.to_string()));
                }
            }
            let status = super::pod_status::deployment_status(deployment, &pods, hash, deadline, &now);
            if let Some(map) = deployment.as_object_mut() {
                map.insert("status".into(), status);
            }
        })?;
        Ok(())
    }

    /// The pods a log line for `target` (a pod, or a deployment's current pods) goes to, with
    /// the container: the named one, or each pod's first container.
    pub fn log_targets(
        &mut self,
        namespace: &str,
        target: &str,
        container: Option<&str>,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let pods = if self.store.get(Kind::Pod, namespace, target).is_some() {
            vec![target.to_owned()]
        } else {
            let deployment = self
                .store
                .get(Kind::Deployment, namespace, target)
                .cloned()
                .ok_or_else(|| ApiError::not_found(Kind::Pod, target))?;
            let hash = template_hash(&deployment["spec"]["template"]);
            self.ensure_pods(namespace, target, &deployment, &hash)?
        };
        Ok(pods
            .into_iter()
            .map(|pod| {
                let container = container
                    .map(str::to_owned)
                    .or_else(|| super::pod_status::main_container(&self.store, namespace, &pod))
                    .unwrap_or_default();
                (pod, container)
            })
            .collect())
    }
}

fn target<'a>(
    kind: Kind,
    namespace: &'a str,
    name: &'a str,
    manager: &'a str,
    subresource: Option<&'static str>,
    now: &'a str,
) -> Target<'a> {
    Target { kind, namespace, name, subresource, manager, now }
}

fn new_pod(deployment: &Value, replica_set: &str, hash: &str, name: &str) -> Value {
    let template = &deployment["spec"]["template"];
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("pod-template-hash".into(), json!(hash));
    }
    let owner_uid = deployment.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
    let replica_set_uid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{owner_uid}/{hash}").as_bytes());
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("nodeName".into(), json!("fake-node"));
    }
    let mut metadata = json!({
        "name": name,
        "generateName": format!("{replica_set}-"),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": replica_set,
            "uid": replica_set_uid.to_string(),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let (Some(annotations), Some(map)) = (template.pointer("/metadata/annotations"), metadata.as_object_mut()) {
        map.insert("annotations".into(), annotations.clone());
    }
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": { "phase": "Pending" } })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_label_safe() {
        let template = json!({ "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [] } });
        let hash = template_hash(&template);
        assert_eq!(hash, template_hash(&template.clone()));
        assert_eq!(hash.len(), 10);
        assert!(super::super::admission::is_label_value(&hash));
        assert_ne!(hash, template_hash(&json!({ "spec": {} })));
    }
}
