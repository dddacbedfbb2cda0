//! `?watch=true`: newline-delimited JSON events (`{"type":"ADDED","object":{...}}`), first those
//! after the requested `resourceVersion` (or the current objects as synthetic ADDED events, then
//! a bookmark when `sendInitialEvents=true`), then live changes until `timeoutSeconds` pass or
//! the test closes the watches. With a selector, an object that stops matching is reported as
//! DELETED and one that starts matching as ADDED, as the real server does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::ApiError;
use super::resource::Kind;
use super::selector::ObjectFilter;
use super::store::{Change, EventType, Store};

/// The server's own watch timeout when the client names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch sees of the changes.
#[derive(Debug, Clone)]
struct Filter(ObjectFilter);

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        self.0.matches(object)
    }

    /// What a watch with this filter sees of `change`.
    fn view<'a>(&self, change: &'a Change) -> Option<(&'static str, &'a Value)> {
        let now = self.matches(&change.object);
        let before = change.previous.as_ref().is_some_and(|previous| self.matches(previous));
        let event = match (change.event, before, now) {
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) | (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, false) | (EventType::Deleted, _, true) => EventType::Deleted,
            _ => return None,
        };
        Some((event.as_str(), &change.object))
    }
}

fn line(event: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": event, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Starts a watch of `kind` in `namespace` (or all namespaces) for a request's `query`.
pub(crate) fn start(
    store: &mut Store,
    kind: Kind,
    namespace: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Body, ApiError> {
    let param = |name: &str| query.get(name).map(String::as_str).filter(|value| !value.is_empty());
    let filter =
        Filter(ObjectFilter::parse(param("labelSelector"), param("fieldSelector")).map_err(ApiError::bad_request)?);
    let timeout = match param("timeoutSeconds") {
        Some(seconds) => Duration::from_secs(
            seconds.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {seconds}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let send_initial = param("sendInitialEvents") == Some("true");
    let mut lines: Vec<Bytes> = Vec::new();
    match param("resourceVersion") {
        None | Some("0") => {
            let current = store.list(kind, namespace).filter(|object| filter.matches(object));
            lines.extend(current.map(|object| line(EventType::Added.as_str(), object)));
            if send_initial {
                let bookmark = json!({
                    "kind": kind.name(),
                    "apiVersion": kind.api_version(),
                    "metadata": {
                        "resourceVersion": store.revision().to_string(),
                        "annotations": { "k8s.io/initial-events-end": "true" },
                    },
                });
                lines.push(line("BOOKMARK", &bookmark));
            }
        }
        Some(version) => {
            let version: u64 =
                version.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {version}")))?;
            match store.changes_since(kind, namespace, version) {
                Ok(changes) => lines.extend(
                    changes.iter().filter_map(|change| filter.view(change)).map(|(event, object)| line(event, object)),
                ),
                // The real server answers 200 and reports the expiry as the stream's only event.
                Err(gone) => return Ok(Body::from(line("ERROR", &gone.status()))),
            }
        }
    }
    let receiver = store.subscribe(kind, namespace);
    let deadline = Instant::now() + timeout;
    let live = stream::unfold((receiver, filter), move |(mut receiver, filter)| async move {
        let chunk = next_line(&mut receiver, &filter, deadline).await?;
        Some((Ok::<_, std::io::Error>(chunk), (receiver, filter)))
    });
    Ok(Body::from_stream(stream::iter(lines.into_iter().map(Ok)).chain(live)))
}

/// The next event this watch sees, or `None` at its deadline or when the watches are closed.
async fn next_line(
    receiver: &mut mpsc::UnboundedReceiver<Arc<Change>>,
    filter: &Filter,
    deadline: Instant,
) -> Option<Bytes> {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return None,
            change = receiver.recv() => {
                let change = change?;
                if let Some((event, object)) = filter.view(&change) {
                    return Some(line(event, object));
                }
            }
        }
    }
}
