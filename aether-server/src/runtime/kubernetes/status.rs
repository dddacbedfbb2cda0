//! What a Deployment's and its pods' statuses say about a rollout: plain functions over the
//! objects, so every case can be tested without a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::objects::{APP_CONTAINER, DEPLOYMENT_LABEL};

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Still going; what it is doing now.
    Step(String),
    /// The app's container keeps crashing (`pod` is where to read its last lines).
    CrashLoop {
        pod: String,
    },
    Ready,
    Failed(String),
}

/// The deployment id in the Deployment's pod template: what it rolls out now.
pub fn template_release(deployment: &Deployment) -> Option<String> {
    let labels = deployment.spec.template.metadata.as_ref()?.labels.as_ref()?;
    labels.get(DEPLOYMENT_LABEL).cloned()
}

pub fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Judges the rollout of deployment `release_id` from the app's Deployment and the release's
/// pods (sorted by name, so the verdict does not depend on listing order).
pub fn assess(deployment: Option<&Deployment>, pods: &[Pod], release_id: &str) -> Assessment {
    let Some(deployment) = deployment else { return Assessment::Step("waiting for the Deployment".to_owned()) };
    match template_release(deployment) {
        Some(current) if current == release_id => {}
        Some(other) => return Assessment::Failed(format!("the app's Deployment now rolls out deployment {other}")),
        None => return Assessment::Failed("the app's Deployment carries no deployment id".to_owned()),
    }
    if let Some(reason) = deadline_exceeded(deployment) {
        return Assessment::Failed(reason);
    }
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in &pods {
        if let Some(verdict) = pod_failure(pod) {
            return verdict;
        }
    }
    if rolled_out(deployment) {
        return Assessment::Ready;
    }
    let step = pods.iter().map(|pod| pod_step(pod)).next();
    Assessment::Step(step.unwrap_or_else(|| "scheduling".to_owned()))
}

fn deadline_exceeded(deployment: &Deployment) -> Option<String> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    let stalled = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    })?;
    Some(format!("ProgressDeadlineExceeded: {}", stalled.message.as_deref().unwrap_or("the rollout made no progress")))
}

/// Every replica of the current template is updated and available and no pod of an older
/// template is left, as the Deployment controller has observed it (what `kubectl rollout
/// status` waits for). `availableReplicas` counts the old release's pods too: during a rolling
/// update they keep it at `replicas`, so it proves nothing until the old pods are gone.
fn rolled_out(deployment: &Deployment) -> bool {
    let (spec, Some(status)) = (&deployment.spec, deployment.status.as_ref()) else { return false };
    let desired = spec.replicas.unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= generation
        && updated >= desired
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= updated
}

/// A pod whose fetcher failed (the artifact could not be downloaded or did not verify) or
/// whose app keeps crashing fails the rollout at once: waiting would not change either.
fn pod_failure(pod: &Pod) -> Option<Assessment> {
    let status = pod.status.as_ref()?;
    for init in status.init_container_statuses.iter().flatten() {
        let terminated = init.state.as_ref().and_then(|s| s.terminated.as_ref());
        let last = init.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        if let Some(failed) = terminated.or(last).filter(|t| t.exit_code != 0) {
            let why = failed.message.as_deref().or(failed.reason.as_deref()).unwrap_or("no message");
            return Some(Assessment::Failed(format!("the artifact fetcher failed: {}", why.trim())));
        }
    }
    let app = app_status(status.container_statuses.as_deref())?;
    let waiting = app.state.as_ref().and_then(|s| s.waiting.as_ref())?;
    (waiting.reason.as_deref() == Some("CrashLoopBackOff"))
        .then(|| Assessment::CrashLoop { pod: pod.metadata.name.clone().unwrap_or_default() })
}

/// What one pod of the release is doing, in the words a user expects.
fn pod_step(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else { return "scheduling".to_owned() };
    for init in status.init_container_statuses.iter().flatten() {
        let state = init.state.as_ref();
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            return waiting_step(waiting.reason.as_deref(), waiting.message.as_deref(), "pulling artifact");
        }
        if state.and_then(|s| s.running.as_ref()).is_some() {
            return "pulling artifact".to_owned();
        }
    }
    let Some(app) = app_status(status.container_statuses.as_deref()) else {
        return if status.init_container_statuses.is_some() { "verifying".to_owned() } else { "scheduling".to_owned() };
    };
    let state = app.state.as_ref();
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        return waiting_step(waiting.reason.as_deref(), waiting.message.as_deref(), "starting");
    }
    if state.and_then(|s| s.running.as_ref()).is_some() && !app.ready {
        return "waiting for readiness".to_owned();
    }
    "starting".to_owned()
}

fn waiting_step(reason: Option<&str>, message: Option<&str>, usual: &str) -> String {
    match reason {
        Some(reason @ ("ImagePullBackOff" | "ErrImagePull" | "CreateContainerConfigError" | "InvalidImageName")) => {
            format!("{reason}: {}", message.unwrap_or("").trim())
        }
        _ => usual.to_owned(),
    }
}

fn app_status(statuses: Option<&[ContainerStatus]>) -> Option<&ContainerStatus> {
    statuses?.iter().find(|s| s.name == APP_CONTAINER)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(release: &str, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "web", "generation": 2 },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "aether" } },
                "template": { "metadata": { "labels": { "deployment_id": release } } },
            },
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": name }, "status": status })).unwrap()
    }

    #[test]
    fn ready_once_every_replica_of_this_release_is_available() {
        let observed = json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1 });
        assert_eq!(assess(Some(&deployment("d1", observed)), &[], "d1"), Assessment::Ready);
        // Mid rolling update: the new pod exists but only the old one is available.
        let surging = json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1 });
        assert!(matches!(assess(Some(&deployment("d1", surging)), &[], "d1"), Assessment::Step(_)));
        let stale = json!({ "observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1 });
        assert!(matches!(assess(Some(&deployment("d1", stale)), &[], "d1"), Assessment::Step(_)));
        let other = json!({ "observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1 });
        assert!(matches!(assess(Some(&deployment("d2", other)), &[], "d1"), Assessment::Failed(m) if m.contains("d2")));
        assert_eq!(assess(None, &[], "d1"), Assessment::Step("waiting for the Deployment".into()));
    }

    #[test]
    fn failures_carry_their_reason() {
        let stalled = json!({ "conditions": [{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"web-1\" has timed out progressing."
        }]});
        let verdict = assess(Some(&deployment("d1", stalled)), &[], "d1");
        assert!(
            matches!(&verdict, Assessment::Failed(m) if m.starts_with("ProgressDeadlineExceeded: ReplicaSet")),
            "{verdict:?}"
        );
        let fetch_failed = pod(
            "web-1",
            json!({ "initContainerStatuses": [{
                "name": "fetch", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": { "terminated": { "exitCode": 1, "message": "digest mismatch: expected aa, got bb\n" } }
            }]}),
        );
        let verdict = assess(Some(&deployment("d1", json!({}))), &[fetch_failed], "d1");
        assert_eq!(
            verdict,
            Assessment::Failed("the artifact fetcher failed: digest mismatch: expected aa, got bb".into())
        );
        let crashing = pod(
            "web-1",
            json!({ "containerStatuses": [{
                "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } }
            }]}),
        );
        assert_eq!(
            assess(Some(&deployment("d1", json!({}))), &[crashing], "d1"),
            Assessment::CrashLoop { pod: "web-1".into() }
        );
    }

    #[test]
    fn steps_follow_the_pod() {
        let step =
            |status: serde_json::Value| match assess(Some(&deployment("d1", json!({}))), &[pod("p", status)], "d1") {
                Assessment::Step(step) => step,
                other => panic!("{other:?}"),
            };
        let init_running = json!({ "initContainerStatuses": [{
            "name": "fetch", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": { "running": {} }
        }]});
        assert_eq!(step(init_running), "pulling artifact");
        let pull_backoff = json!({ "containerStatuses": [{
            "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\"" } }
        }]});
        assert_eq!(step(pull_backoff), "ImagePullBackOff: Back-off pulling image \"x\"");
        let unready = json!({ "containerStatuses": [{
            "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": { "running": {} }
        }]});
        assert_eq!(step(unready), "waiting for readiness");
        assert_eq!(step(json!({})), "scheduling");
    }
}
