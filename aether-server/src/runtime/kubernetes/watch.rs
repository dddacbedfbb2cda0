//! Following a rollout on the cluster: watches of the app's Deployment and the release's pods,
//! judged after every change (see [`super::status`]) and reported as steps, then ready or
//! failed.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::objects::{APP_CONTAINER, APP_LABEL, DEPLOYMENT_LABEL, MANAGED_BY};
use super::settings::KubernetesSettings;
use super::status::{Assessment, assess};
use crate::ports::{ReleaseSpec, Rollout, RolloutProgress};

/// Lines of a crashing app's output quoted in the failure.
const CRASH_LINES: i64 = 5;

/// A change seen by one of the two watches.
enum Change {
    Deployment(Event<Deployment>),
    Pod(Event<Pod>),
}

/// Reports of the rollout of `release`, until it is ready or failed. The watches run on their
/// own task, which ends when the rollout does or when the stream is dropped.
pub(super) fn rollout(client: Client, settings: &KubernetesSettings, release: &ReleaseSpec) -> Rollout {
    let (sender, receiver) = mpsc::channel(32);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &settings.namespace);
    let pods: Api<Pod> = Api::namespaced(client, &settings.namespace);
    let app_selector = format!("{}={},{APP_LABEL}={}", MANAGED_BY.0, MANAGED_BY.1, release.app_name);
    let release_selector = format!("{DEPLOYMENT_LABEL}={}", release.deployment_id);
    let (release_id, url) = (release.deployment_id.clone(), settings.url(&release.app_name));
    tokio::spawn(async move {
        let deployment_changes = watcher::watcher(deployments, watcher::Config::default().labels(&app_selector))
            .default_backoff()
            .filter_map(|event| std::future::ready(event.ok().map(Change::Deployment)));
        let pod_changes = watcher::watcher(pods.clone(), watcher::Config::default().labels(&release_selector))
            .default_backoff()
            .filter_map(|event| std::future::ready(event.ok().map(Change::Pod)));
        let mut changes = futures_util::stream::select(deployment_changes.boxed(), pod_changes.boxed());
        let mut seen = Seen::default();
        let mut last_step = None;
        while let Some(change) = changes.next().await {
            seen.apply(change);
            let report = match assess(seen.deployment.as_ref(), &seen.pod_list(), &release_id) {
                Assessment::Step(step) if last_step.as_ref() == Some(&step) => continue,
                Assessment::Step(step) => {
                    last_step = Some(step.clone());
                    RolloutProgress::Step(step)
                }
                Assessment::CrashLoop { pod } => {
                    let reason = format!("CrashLoopBackOff: {}", last_lines(&pods, &pod).await);
                    let _ = sender.send(RolloutProgress::Step(reason.clone())).await;
                    RolloutProgress::Failed { reason }
                }
                Assessment::Ready => RolloutProgress::Ready { url: Some(url.clone()) },
                Assessment::Failed(reason) => RolloutProgress::Failed { reason },
            };
            let ended = !matches!(report, RolloutProgress::Step(_));
            if sender.send(report).await.is_err() || ended {
                return;
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|report| (report, receiver))
    })
    .boxed()
}

/// The last objects each watch reported.
#[derive(Default)]
struct Seen {
    deployment: Option<Deployment>,
    pods: BTreeMap<String, Pod>,
}

impl Seen {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Deployment(Event::Apply(d) | Event::InitApply(d)) => self.deployment = Some(d),
            Change::Deployment(Event::Delete(_)) => self.deployment = None,
            Change::Pod(Event::Apply(pod) | Event::InitApply(pod)) => {
                self.pods.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
            }
            Change::Pod(Event::Delete(pod)) => {
                self.pods.remove(pod.metadata.name.as_deref().unwrap_or_default());
            }
            // A relist follows: start from what it reports.
            Change::Pod(Event::Init) => self.pods.clear(),
            Change::Deployment(Event::Init | Event::InitDone) | Change::Pod(Event::InitDone) => {}
        }
    }

    fn pod_list(&self) -> Vec<Pod> {
        self.pods.values().cloned().collect()
    }
}

/// The crashed container's last lines, joined, or why they could not be read.
async fn last_lines(pods: &Api<Pod>, pod: &str) -> String {
    let params = LogParams {
        container: Some(APP_CONTAINER.to_owned()),
        previous: true,
        tail_lines: Some(CRASH_LINES),
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) if text.trim().is_empty() => "no output".to_owned(),
        Ok(text) => text.lines().map(str::trim_end).collect::<Vec<_>>().join(" | "),
        Err(error) => format!("its output could not be read: {error}"),
    }
}
