//! The statuses the kubelet and the deployment controller would report: container states per
//! scenario, pod conditions, and a deployment's replica counts and conditions computed from its
//! pods. Transition times are kept while a condition's status stays the same.

use serde_json::{Value, json};

use super::resource::Kind;
use super::store::Store;
use super::workload::Scenario;

/// The first (main) container of a stored pod.
pub(crate) fn main_container(store: &Store, namespace: &str, pod: &str) -> Option<String> {
    let pod = store.get(Kind::Pod, namespace, pod)?;
    pod.pointer("/spec/containers/0/name").and_then(Value::as_str).map(str::to_owned)
}

/// `(name, image)` of each container in `group` (`initContainers` or `containers`).
fn containers(pod: &Value, group: &str) -> Vec<(String, String)> {
    pod.pointer(&format!("/spec/{group}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| (text(c, "/name"), text(c, "/image")))
        .collect()
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn waiting(reason: &str, message: Option<&str>) -> Value {
    match message {
        Some(message) => json!({ "waiting": { "reason": reason, "message": message } }),
        None => json!({ "waiting": { "reason": reason } }),
    }
}

fn terminated(code: i32, reason: &str, message: Option<&str>, now: &str) -> Value {
    let mut state = json!({ "exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now, "containerID": "containerd://0" });
    if let (Some(message), Some(map)) = (message, state.as_object_mut()) {
        map.insert("message".into(), json!(message));
    }
    json!({ "terminated": state })
}

/// One container status; `restarts` and `last` carry a crash loop's history.
fn container_status(name: &str, image: &str, state: Value, restarts: i64, last: Value) -> Value {
    let running = state.get("running").is_some();
    json!({
        "name": name,
        "image": image,
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": restarts,
        "state": state,
        "lastState": last,
    })
}

/// Sets a pod's status for `scenario`.
pub(crate) fn apply(pod: &mut Value, scenario: &Scenario, now: &str) -> Result<(), String> {
    let (init, main) = (containers(pod, "initContainers"), containers(pod, "containers"));
    let name = text(pod, "/metadata/name");
    let old = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    let previous_restarts = old.pointer("/containerStatuses/0/restartCount").and_then(Value::as_i64).unwrap_or(0);
    let running = json!({ "running": { "startedAt": now } });
    let completed = terminated(0, "Completed", None, now);
    let pod_initializing = waiting("PodInitializing", None);
    let status = |state: &Value| container_status("", "", state.clone(), 0, json!({}));
    // States of the init containers and the containers, in order.
    let (init_states, main_states): (Vec<Value>, Vec<Value>) = match scenario {
        Scenario::Progressing | Scenario::DeadlineExceeded => {
            let first_main =
                if init.is_empty() { waiting("ContainerCreating", None) } else { pod_initializing.clone() };
            let init_states =
                (0..init.len()).map(|i| if i == 0 { running.clone() } else { pod_initializing.clone() }).collect();
            (init_states, vec![first_main; main.len()])
        }
        Scenario::Ready => (vec![completed.clone(); init.len()], vec![running.clone(); main.len()]),
        Scenario::InitFailed(message) => {
            if init.is_empty() {
                return Err(format!("pod {name} has no init container to fail"));
            }
            let failed = terminated(1, "Error", Some(message), now);
            let init_states =
                (0..init.len()).map(|i| if i == 0 { failed.clone() } else { pod_initializing.clone() }).collect();
            (init_states, vec![pod_initializing.clone(); main.len()])
        }
        Scenario::ImagePullBackOff(image) => {
            let backoff = waiting("ImagePullBackOff", Some(&format!("Back-off pulling image \"{image}\"")));
            match init.iter().position(|(_, i)| i == image) {
                Some(at) => {
                    let init_states = (0..init.len())
                        .map(|i| match i.cmp(&at) {
                            std::cmp::Ordering::Less => completed.clone(),
                            std::cmp::Ordering::Equal => backoff.clone(),
                            std::cmp::Ordering::Greater => pod_initializing.clone(),
                        })
                        .collect();
                    (init_states, vec![pod_initializing.clone(); main.len()])
                }
                None => {
                    let at = main.iter().position(|(_, i)| i == image).unwrap_or(0);
                    let main_states = (0..main.len())
                        .map(|i| if i == at { backoff.clone() } else { waiting("ContainerCreating", None) })
                        .collect();
                    (vec![completed.clone(); init.len()], main_states)
                }
            }
        }
        Scenario::CrashLoop(_) => {
            let first = main.first().map(|(c, _)| c.clone()).unwrap_or_default();
            let uid = text(pod, "/metadata/uid");
            let namespace = text(pod, "/metadata/namespace");
            let message = format!("back-off 10s restarting failed container={first} pod={name}_{namespace}({uid})");
            let main_states = (0..main.len())
                .map(|i| if i == 0 { waiting("CrashLoopBackOff", Some(&message)) } else { running.clone() })
                .collect();
            (vec![completed.clone(); init.len()], main_states)
        }
    };
    let mut init_statuses: Vec<Value> = Vec::new();
    for ((container, image), state) in init.iter().zip(init_states) {
        let mut entry = status(&state);
        entry["name"] = json!(container);
        entry["image"] = json!(image_for(image, &state, scenario));
        entry["ready"] = json!(state.pointer("/terminated/exitCode") == Some(&json!(0)));
        init_statuses.push(entry);
    }
    let mut main_statuses: Vec<Value> = Vec::new();
    for (index, ((container, image), state)) in main.iter().zip(main_states).enumerate() {
        let (restarts, last) = match scenario {
            Scenario::CrashLoop(_) if index == 0 => ((previous_restarts + 1).max(1), terminated(1, "Error", None, now)),
            _ => (if index == 0 { previous_restarts } else { 0 }, json!({})),
        };
        main_statuses.push(container_status(container, &image_for(image, &state, scenario), state, restarts, last));
    }
    let initialized = init_statuses.iter().all(|s| s["ready"] == json!(true));
    let ready = initialized && main_statuses.iter().all(|s| s["ready"] == json!(true));
    let phase = if main_statuses.iter().any(|s| s["state"].get("running").is_some() || s["restartCount"] != json!(0)) {
        "Running"
    } else {
        "Pending"
    };
    let pending_init: Vec<String> =
        init_statuses.iter().filter(|s| s["ready"] != json!(true)).map(|s| text(s, "/name")).collect();
    let not_ready: Vec<String> =
        main_statuses.iter().filter(|s| s["ready"] != json!(true)).map(|s| text(s, "/name")).collect();
    let conditions = vec![
        condition(&old, "PodReadyToStartContainers", true, None, now),
        condition(&old, "Initialized", initialized, Some(("ContainersNotInitialized", &pending_init)), now),
        condition(&old, "Ready", ready, Some(("ContainersNotReady", &not_ready)), now),
        condition(&old, "ContainersReady", ready, Some(("ContainersNotReady", &not_ready)), now),
        condition(&old, "PodScheduled", true, None, now),
    ];
    let start = old.get("startTime").cloned().unwrap_or_else(|| json!(now));
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "10.0.0.1",
        "hostIPs": [{ "ip": "10.0.0.1" }],
        "startTime": start,
        "qosClass": "BestEffort",
        "containerStatuses": main_statuses,
    });
    if let Some(map) = status.as_object_mut() {
        if !init_statuses.is_empty() {
            map.insert("initContainerStatuses".into(), json!(init_statuses));
        }
        if phase == "Running" {
            map.insert("podIP".into(), json!("10.244.0.10"));
            map.insert("podIPs".into(), json!([{ "ip": "10.244.0.10" }]));
        }
    }
    if let Some(map) = pod.as_object_mut() {
        map.insert("status".into(), status);
    }
    Ok(())
}

/// The image a status reports: the one that cannot be pulled, else the spec's.
fn image_for(spec_image: &str, state: &Value, scenario: &Scenario) -> String {
    match scenario {
        Scenario::ImagePullBackOff(image) if state.pointer("/waiting/reason") == Some(&json!("ImagePullBackOff")) => {
            image.clone()
        }
        _ => spec_image.to_owned(),
    }
}

/// A pod condition; `unready` gives the reason and the containers to name when it is False.
fn condition(old: &Value, kind: &str, ok: bool, unready: Option<(&str, &[String])>, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let mut condition = json!({ "type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition(old, kind, status, now) });
    if let (false, Some((reason, containers)), Some(map)) = (ok, unready, condition.as_object_mut()) {
        map.insert("reason".into(), json!(reason));
        let what = if reason == "ContainersNotInitialized" { "incomplete status" } else { "unready status" };
        map.insert("message".into(), json!(format!("containers with {what}: [{}]", containers.join(" "))));
    }
    condition
}

/// The condition's last transition time: unchanged while its status is.
fn transition(old_status: &Value, kind: &str, status: &str, now: &str) -> Value {
    old_status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type") == Some(&json!(kind)) && c.get("status") == Some(&json!(status)))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now))
}

/// A deployment's status from its pods; `hash` is its current template's.
pub(crate) fn deployment_status(
    deployment: &Value,
    pods: &[Value],
    hash: &str,
    deadline_exceeded: bool,
    now: &str,
) -> Value {
    let wanted = deployment.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let is_ready = |pod: &Value| {
        pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|conditions| {
            conditions.iter().any(|c| c["type"] == json!("Ready") && c["status"] == json!("True"))
        })
    };
    let current: Vec<&Value> =
        pods.iter().filter(|pod| pod.pointer("/metadata/labels/pod-template-hash") == Some(&json!(hash))).collect();
    let total = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    let updated = i64::try_from(current.len()).unwrap_or(i64::MAX);
    let ready = i64::try_from(pods.iter().filter(|pod| is_ready(pod)).count()).unwrap_or(i64::MAX);
    let current_ready = i64::try_from(current.iter().filter(|pod| is_ready(pod)).count()).unwrap_or(i64::MAX);
    let available = ready >= wanted - max_unavailable(deployment, wanted);
    let replica_set = format!("{}-{hash}", text(deployment, "/metadata/name"));
    let (progressing, reason, message) = if deadline_exceeded {
        (false, "ProgressDeadlineExceeded", format!("ReplicaSet \"{replica_set}\" has timed out progressing."))
    } else if current_ready >= wanted && total == updated {
        (true, "NewReplicaSetAvailable", format!("ReplicaSet \"{replica_set}\" has successfully progressed."))
    } else {
        (true, "ReplicaSetUpdated", format!("ReplicaSet \"{replica_set}\" is progressing."))
    };
    let old = deployment.get("status").cloned().unwrap_or_else(|| json!({}));
    let (available_reason, available_message) = if available {
        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    let conditions = [
        ("Available", available, available_reason, available_message.to_owned()),
        ("Progressing", progressing, reason, message),
    ]
    .map(|(kind, ok, reason, message)| {
        let status = if ok { "True" } else { "False" };
        json!({ "type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": transition(&old, kind, status, now) })
    });
    let mut status = json!({
        "observedGeneration": deployment.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "conditions": conditions,
    });
    // The real server leaves zero counts out.
    for (field, count) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", (wanted - ready).max(0)),
    ] {
        if let (true, Some(map)) = (count > 0, status.as_object_mut()) {
            map.insert(field.into(), json!(count));
        }
    }
    status
}

/// `maxUnavailable` of a rolling update, resolved against `replicas` (rounded down).
fn max_unavailable(deployment: &Value, replicas: i64) -> i64 {
    match deployment.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(percent)) => {
            percent.trim_end_matches('%').parse::<i64>().map_or(0, |percent| replicas * percent / 100)
        }
        _ => 0,
    }
}
