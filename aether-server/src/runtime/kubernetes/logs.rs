//! An app's log lines from its pods' logs, selected by label, each stamped by Kubernetes and
//! attributed to the deployment its pod belongs to. A pod's log stream that breaks ends the
//! follower's stream with an error.

use std::collections::HashSet;

use aether_core::timestamp::parse_rfc3339_millis;
use futures_util::io::AsyncBufReadExt as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::kube_error;
use super::objects::{APP_CONTAINER, APP_LABEL, DEPLOYMENT_LABEL, MANAGED_BY};
use crate::ports::{LogLine, LogLines, LogQuery, LogStream, RuntimeError};
use crate::state::now_ms;

fn selector(app_name: &str, query: &LogQuery) -> String {
    let mut selector = format!("{}={},{APP_LABEL}={app_name}", MANAGED_BY.0, MANAGED_BY.1);
    if let Some(deployment) = &query.deployment_id {
        selector.push_str(&format!(",{DEPLOYMENT_LABEL}={deployment}"));
    }
    selector
}

fn params(query: &LogQuery, follow: bool, tail: Option<usize>) -> LogParams {
    // Kubernetes filters by whole seconds; the exact cut is made on each line's stamp.
    let since_seconds = query.since_ms.map(|since| ((now_ms() - since) / 1000 + 1).max(1));
    LogParams {
        container: Some(APP_CONTAINER.to_owned()),
        follow,
        timestamps: true,
        tail_lines: tail.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        since_seconds,
        ..LogParams::default()
    }
}

/// One line as Kubernetes serves it with `timestamps=true`: `<RFC 3339 nanos> <text>`.
fn parse(pod: &Pod, raw: &str) -> LogLine {
    let deployment_id = pod.metadata.labels.as_ref().and_then(|l| l.get(DEPLOYMENT_LABEL)).cloned().unwrap_or_default();
    let (at_ms, text) = match raw.split_once(' ').and_then(|(stamp, text)| Some((parse_rfc3339_millis(stamp)?, text))) {
        Some(stamped) => stamped,
        None => (now_ms(), raw),
    };
    // Kubernetes keeps one stream per container, stdout and stderr interleaved.
    LogLine { at_ms, deployment_id, stream: LogStream::Stdout, text: text.to_owned() }
}

/// The newest `query.tail` matching lines across the app's pods, oldest first.
pub(super) async fn tail(pods: Api<Pod>, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
    let listed = pods
        .list(&ListParams::default().labels(&selector(app_name, query)))
        .await
        .map_err(|e| kube_error("list the app's pods", e))?;
    let mut lines = Vec::new();
    for pod in &listed.items {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let text = match pods.logs(name, &params(query, false, Some(query.tail))).await {
            Ok(text) => text,
            // A pod still initialising has no log yet.
            Err(kube::Error::Api(status)) if status.code == 400 => continue,
            Err(error) => return Err(kube_error("read a pod's log", error)),
        };
        lines.extend(text.lines().map(|raw| parse(pod, raw)).filter(|line| query.matches(line)));
    }
    lines.sort_by_key(|line| line.at_ms);
    let skip = lines.len().saturating_sub(query.tail);
    Ok(futures_util::stream::iter(lines.into_iter().skip(skip).map(Ok)).boxed())
}

/// The tail of every pod of the app, then every new line, including those of pods that start
/// later (a new release), until the follower goes away.
pub(super) async fn follow(pods: Api<Pod>, app_name: &str, query: &LogQuery) -> Result<LogLines, RuntimeError> {
    let (sender, receiver) = mpsc::channel::<Result<LogLine, RuntimeError>>(256);
    let (selector, query) = (selector(app_name, query), query.clone());
    tokio::spawn(async move {
        let mut following = HashSet::new();
        let mut first = true;
        let mut changes =
            watcher::watcher(pods.clone(), watcher::Config::default().labels(&selector)).default_backoff().boxed();
        while let Some(change) = changes.next().await {
            let pod = match change {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
                Ok(Event::InitDone) => {
                    first = false;
                    continue;
                }
                Ok(_) => continue,
                Err(error) => {
                    let _ = sender.send(Err(RuntimeError::transient("watching the app's pods failed", error))).await;
                    return;
                }
            };
            let started = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if !started || !following.insert(name.clone()) {
                continue;
            }
            // Pods there from the start contribute their tail; later ones everything.
            let tail = first.then_some(query.tail);
            tokio::spawn(stream_pod(pods.clone(), pod, params(&query, true, tail), query.clone(), sender.clone()));
            if sender.is_closed() {
                return;
            }
        }
    });
    Ok(futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (line, receiver))
    })
    .boxed())
}

/// Forwards one pod's log until it ends (the pod stopped) or breaks (an error is sent).
async fn stream_pod(
    pods: Api<Pod>,
    pod: Pod,
    params: LogParams,
    query: LogQuery,
    sender: mpsc::Sender<Result<LogLine, RuntimeError>>,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let reader = match pods.log_stream(&name, &params).await {
        Ok(reader) => reader,
        Err(error) => {
            let _ = sender.send(Err(kube_error(&format!("follow the log of pod {name}"), error))).await;
            return;
        }
    };
    let mut lines = reader.lines();
    loop {
        match lines.try_next().await {
            Ok(Some(raw)) => {
                let line = parse(&pod, &raw);
                if query.matches(&line) && sender.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                let message = format!("the log stream of pod {name} broke");
                let _ = sender.send(Err(RuntimeError::transient(message, error))).await;
                return;
            }
        }
    }
}
