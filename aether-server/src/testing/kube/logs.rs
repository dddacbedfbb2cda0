//! Container logs: what each container printed (and, after a restart, what its previous
//! instance printed), served as the kubelet serves them through the API server — plain text
//! lines, optionally timestamped, filtered by `tailLines`, `sinceSeconds`, `sinceTime` and
//! `limitBytes` (which bounds what is already there, not what a follower receives later), and
//! with `follow=true` kept open for new lines until the client hangs up or the container stops.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use futures_util::stream;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub time: Timestamp,
    pub text: String,
}

impl LogLine {
    fn render(&self, timestamps: bool) -> String {
        if timestamps { format!("{} {}\n", self.time, self.text) } else { format!("{}\n", self.text) }
    }
}

#[derive(Debug)]
enum Follow {
    Line(LogLine),
    /// End the response with an error instead of a clean end.
    Break,
}

#[derive(Debug, Default)]
struct ContainerLog {
    current: Vec<LogLine>,
    previous: Option<Vec<LogLine>>,
    followers: Vec<mpsc::UnboundedSender<Follow>>,
}

/// The query of a log request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
    pub limit_bytes: Option<usize>,
}

/// `(namespace, pod, container)`.
type ContainerKey = (String, String, String);

#[derive(Debug, Default)]
pub(crate) struct Logs {
    containers: BTreeMap<ContainerKey, ContainerLog>,
}

fn key(namespace: &str, pod: &str, container: &str) -> ContainerKey {
    (namespace.to_owned(), pod.to_owned(), container.to_owned())
}

impl Logs {
    /// Appends a line, and sends it to the container's followers.
    pub fn push(&mut self, namespace: &str, pod: &str, container: &str, line: LogLine) {
        let log = self.containers.entry(key(namespace, pod, container)).or_default();
        log.followers.retain(|follower| follower.send(Follow::Line(line.clone())).is_ok());
        log.current.push(line);
    }

    /// The container exited and was started again: what it printed becomes the previous log
    /// (`lines`, when given, replace it), and its followers reach the end of the stream.
    pub fn restart(&mut self, namespace: &str, pod: &str, container: &str, lines: Option<Vec<LogLine>>) {
        let log = self.containers.entry(key(namespace, pod, container)).or_default();
        let printed = std::mem::take(&mut log.current);
        log.previous = Some(lines.unwrap_or(printed));
        log.followers.clear();
    }

    /// Makes every open log stream of the pod fail mid-way.
    pub fn break_streams(&mut self, namespace: &str, pod: &str) {
        for log in self.of_pod(namespace, pod) {
            for follower in log.followers.drain(..) {
                let _ = follower.send(Follow::Break);
            }
        }
    }

    /// The pod is gone: its streams end and its logs are dropped.
    pub fn forget(&mut self, namespace: &str, pod: &str) {
        self.containers.retain(|(ns, name, _), _| !(ns == namespace && name == pod));
    }

    /// Open follow streams on the pod's containers.
    pub fn followers(&self, namespace: &str, pod: &str) -> usize {
        self.containers
            .iter()
            .filter(|((ns, name, _), _)| ns == namespace && name == pod)
            .map(|(_, log)| log.followers.iter().filter(|follower| !follower.is_closed()).count())
            .sum()
    }

    fn of_pod<'a>(&'a mut self, namespace: &'a str, pod: &'a str) -> impl Iterator<Item = &'a mut ContainerLog> + 'a {
        self.containers.iter_mut().filter(move |((ns, name, _), _)| ns == namespace && name == pod).map(|(_, log)| log)
    }

    /// Answers a log request for `pod` (the stored object): the body, streaming when following.
    pub fn open(&mut self, pod: &Value, options: &LogOptions, now: Timestamp) -> Result<Body, ApiError> {
        let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let container = resolve_container(pod, options.container.as_deref())?;
        let log = self.containers.entry(key(namespace, name, &container)).or_default();
        let lines = if options.previous {
            log.previous.clone().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                ))
            })?
        } else {
            if log.current.is_empty()
                && log.previous.is_none()
                && let Some(reason) = waiting_reason(pod, &container)
            {
                return Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
                )));
            }
            log.current.clone()
        };
        let since = match (options.since_seconds, options.since_time) {
            (Some(seconds), _) => Some(now.as_second().saturating_sub(seconds)),
            (None, time) => time.map(Timestamp::as_second),
        };
        let mut selected: Vec<&LogLine> =
            lines.iter().filter(|line| since.is_none_or(|since| line.time.as_second() >= since)).collect();
        if let Some(tail) = options.tail_lines {
            selected = selected.split_off(selected.len().saturating_sub(tail));
        }
        let mut initial: String = selected.iter().map(|line| line.render(options.timestamps)).collect();
        if let Some(limit) = options.limit_bytes {
            let mut end = limit.min(initial.len());
            while !initial.is_char_boundary(end) {
                end -= 1;
            }
            initial.truncate(end);
        }
        if !options.follow || options.previous {
            return Ok(Body::from(initial));
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        log.followers.push(sender);
        let timestamps = options.timestamps;
        let first = stream::iter((!initial.is_empty()).then(|| Ok::<_, std::io::Error>(Bytes::from(initial))));
        let rest = stream::unfold(receiver, move |mut receiver| async move {
            let chunk = match receiver.recv().await? {
                Follow::Line(line) => Ok(Bytes::from(line.render(timestamps))),
                Follow::Break => Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "log stream broken")),
            };
            Some((chunk, receiver))
        });
        Ok(Body::from_stream(first.chain(rest)))
    }
}

/// The container a log request is about: the one named, or the pod's only container.
fn resolve_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let names = |group: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{group}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|container| container.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    match requested {
        Some(wanted) if containers.iter().chain(&init).any(|c| c == wanted) => Ok(wanted.to_owned()),
        Some(wanted) => Err(ApiError::bad_request(format!("container {wanted} is not valid for pod {name}"))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}] or one of the init containers: [{}]",
            containers.join(" "),
            init.join(" ")
        ))),
    }
}

/// Why the container has not started yet, when it has not.
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|group| pod.pointer(&format!("/status/{group}")).and_then(Value::as_array).into_iter().flatten())
        .find(|status| status.get("name").and_then(Value::as_str) == Some(container))
        .and_then(|status| status.pointer("/state/waiting/reason"))
        .and_then(Value::as_str)
        .filter(|reason| *reason != "CrashLoopBackOff")
        .map(str::to_owned)
}
