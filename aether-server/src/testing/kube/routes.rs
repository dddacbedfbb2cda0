//! The HTTP face of the fake: paths as the real API server lays them out
//! (`/api/v1/namespaces/{ns}/pods/{name}/log`, `/apis/apps/v1/namespaces/{ns}/deployments`,
//! cluster-wide lists like `/apis/apps/v1/deployments`), dispatched to the store, the watch and
//! the logs. Each request is recorded, may fail on the test's command, and is served under the
//! cluster lock without awaiting; streaming bodies go on after the lock is released.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::admission::{self, FieldValidation};
use super::cluster::{Cluster, RecordedRequest, now, now_seconds};
use super::error::ApiError;
use super::logs::LogOptions;
use super::resource::Kind;
use super::selector::ObjectFilter;
use super::watch;
use super::writes::Target;

/// The bearer token the fake's kubeconfig carries; requests with another token get 401.
pub const TOKEN: &str = "fake-kube-token";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// A parsed request.
#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.param(name)
            .map(|text| text.parse().map_err(|_| ApiError::bad_request(format!("invalid {name}: {text}"))))
            .transpose()
    }
}

/// Where a path points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let route = |kind, namespace: Option<&str>, name: Option<&&str>, subresource: Option<&&str>| Route {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.map(|name| (*name).to_owned()),
        subresource: subresource.map(|sub| (*sub).to_owned()),
    };
    if let ["namespaces", namespace, plural, tail @ ..] = rest
        && let Some(kind) = Kind::from_path(&group_version, plural).filter(|kind| kind.namespaced())
    {
        return match tail {
            [] | [_] | [_, _] => Some(route(kind, Some(namespace), tail.first(), tail.get(1))),
            _ => None,
        };
    }
    let [plural, tail @ ..] = rest else { return None };
    let kind = Kind::from_path(&group_version, plural)?;
    match tail {
        [] => Some(route(kind, None, None, None)),
        [_] if !kind.namespaced() => Some(route(kind, None, tail.first(), None)),
        // Anything else under a namespace is a resource this server does not serve.
        [_, "status"] if !kind.namespaced() => Some(route(kind, None, tail.first(), tail.get(1))),
        _ => None,
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, method, &uri, &headers, body)
}

fn serve(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let header_text =
        |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let content_type = header_text(header::CONTENT_TYPE);
    let request = Request {
        method,
        path: uri.path().to_owned(),
        query: Query::try_from_uri(uri).map(|Query(query)| query).unwrap_or_default(),
        content_type: content_type.split(';').next().unwrap_or_default().trim().to_owned(),
        user_agent: header_text(header::USER_AGENT),
        body,
    };
    let mut cluster = shared.lock();
    cluster.requests.push(RecordedRequest {
        method: request.method.to_string(),
        path: request.path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        content_type: (!content_type.is_empty()).then_some(content_type),
    });
    if let Some(code) = cluster.failures.pop_front() {
        return ApiError::injected(code).into_response();
    }
    let authorization = header_text(header::AUTHORIZATION);
    if !authorization.is_empty() && authorization != format!("Bearer {TOKEN}") {
        return ApiError::unauthorized().into_response();
    }
    match handle(&mut cluster, &request) {
        Ok(Reply::Json(code, value, warnings)) => {
            let mut response = (code, axum::Json(value)).into_response();
            for warning in warnings {
                if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{}\"", warning.replace('"', "\\\""))) {
                    response.headers_mut().append(header::WARNING, value);
                }
                cluster.warnings.push(warning);
            }
            response
        }
        Ok(Reply::Stream(content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(error) => error.into_response(),
    }
}

enum Reply {
    Json(StatusCode, Value, Vec<String>),
    Stream(&'static str, Body),
}

fn ok_json(code: StatusCode, value: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(code, value, Vec::new()))
}

fn handle(cluster: &mut Cluster, request: &Request) -> Result<Reply, ApiError> {
    if request.path == "/version" {
        return ok_json(
            StatusCode::OK,
            json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64" }),
        );
    }
    let route = parse_path(&request.path).ok_or_else(|| ApiError::no_route(&request.path))?;
    let kind = route.kind;
    let namespace = route.namespace.as_deref().unwrap_or_default();
    let subresource = match route.subresource.as_deref() {
        None => None,
        Some("status") if kind.has_status() => Some("status"),
        Some("log") if kind == Kind::Pod && request.method == Method::GET => Some("log"),
        Some(_) => return Err(ApiError::no_route(&request.path)),
    };
    let collection_in_namespace = route.namespace.is_some() || !kind.namespaced();
    match (&request.method, route.name.as_deref()) {
        (&Method::GET, None) if request.flag("watch") => {
            let body = watch::start(&mut cluster.store, kind, route.namespace.as_deref(), &request.query)?;
            Ok(Reply::Stream("application/json", body))
        }
        (&Method::GET, None) => list(cluster, kind, route.namespace.as_deref(), request),
        (&Method::POST, None) if collection_in_namespace => create(cluster, kind, namespace, request),
        (&Method::DELETE, None) if collection_in_namespace => delete_collection(cluster, kind, namespace, request),
        (&Method::GET, Some(name)) if subresource == Some("log") => {
            let pod =
                cluster.store.get(kind, namespace, name).cloned().ok_or_else(|| ApiError::not_found(kind, name))?;
            let options = LogOptions {
                container: request.param("container").map(str::to_owned),
                follow: request.flag("follow"),
                previous: request.flag("previous"),
                timestamps: request.flag("timestamps"),
                tail_lines: request.number("tailLines")?,
                since_seconds: request.number("sinceSeconds")?,
                since_time: request.number("sinceTime")?,
                limit_bytes: request.number("limitBytes")?,
            };
            Ok(Reply::Stream("text/plain", cluster.logs.open(&pod, &options, now())?))
        }
        (&Method::GET, Some(name)) => ok_json(
            StatusCode::OK,
            cluster.store.get(kind, namespace, name).cloned().ok_or_else(|| ApiError::not_found(kind, name))?,
        ),
        (&Method::PUT | &Method::PATCH, Some(name)) => write(cluster, kind, namespace, name, subresource, request),
        (&Method::DELETE, Some(name)) if subresource.is_none() => {
            let mut options: Value = if request.body.is_empty() { json!({}) } else { parse_json(&request.body)? };
            if let (Some(policy), Some(map)) = (request.param("propagationPolicy"), options.as_object_mut()) {
                map.insert("propagationPolicy".into(), json!(policy));
            }
            let deleted = cluster.delete(kind, namespace, name, &options)?;
            let uid = deleted.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            ok_json(
                StatusCode::OK,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": { "name": name, "group": kind.group(), "kind": kind.plural(), "uid": uid },
                }),
            )
        }
        (method, _) => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

fn filter(request: &Request) -> Result<ObjectFilter, ApiError> {
    ObjectFilter::parse(request.param("labelSelector"), request.param("fieldSelector")).map_err(ApiError::bad_request)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the request body is not valid JSON: {error}")))
}

/// A `<Kind>List`, filtered by the selectors and paged by `limit` and `continue`.
fn list(cluster: &Cluster, kind: Kind, namespace: Option<&str>, request: &Request) -> Result<Reply, ApiError> {
    let filter = filter(request)?;
    let after = request.param("continue").unwrap_or_default();
    let limit: Option<usize> = request.number::<usize>("limit")?.filter(|limit| *limit > 0);
    let matching: Vec<&Value> = cluster
        .store
        .list(kind, namespace)
        .filter(|object| filter.matches(object))
        .filter(|object| after.is_empty() || position(object).as_str() > after)
        .collect();
    let page: Vec<&Value> = matching.iter().take(limit.unwrap_or(usize::MAX)).copied().collect();
    let mut metadata = json!({ "resourceVersion": cluster.store.revision().to_string() });
    if let (Some(last), true) = (page.last(), page.len() < matching.len()) {
        metadata["continue"] = json!(position(last));
        metadata["remainingItemCount"] = json!(matching.len() - page.len());
    }
    ok_json(StatusCode::OK, list_body(kind, metadata, page.into_iter().cloned()))
}

/// A list object whose items carry no `kind` and `apiVersion`, as the real server sends them.
fn list_body(kind: Kind, metadata: Value, items: impl Iterator<Item = Value>) -> Value {
    let items: Vec<Value> = items
        .map(|mut item| {
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            item
        })
        .collect();
    json!({ "kind": format!("{}List", kind.name()), "apiVersion": kind.api_version(), "metadata": metadata, "items": items })
}

/// The continue token of an object: its place in the namespace/name order.
fn position(object: &Value) -> String {
    let text = |pointer| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    format!("{}/{}", text("/metadata/namespace"), text("/metadata/name"))
}

fn manager(request: &Request) -> String {
    match request.param("fieldManager") {
        Some(manager) => manager.to_owned(),
        None => request.user_agent.split('/').next().filter(|agent| !agent.is_empty()).unwrap_or("unknown").to_owned(),
    }
}

/// Decodes a write's body as `kind`, checking it names the request's namespace and object.
/// Writes to the main resource cannot set the status of a kind that has a status subresource.
fn decode_body(
    kind: Kind,
    target: (&str, Option<&str>, Option<&'static str>),
    body: Value,
    request: &Request,
    apply: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    let (namespace, name, subresource) = target;
    if request.param("dryRun").is_some() {
        return Err(ApiError::bad_request("dryRun is not supported by this server"));
    }
    let validation = FieldValidation::parse(request.param("fieldValidation"))?;
    let (mut object, warnings) = admission::decode(kind, body, validation, apply)?;
    if let (true, None, Some(map)) = (kind.has_status(), subresource, object.as_object_mut()) {
        map.remove("status");
    }
    let found =
        |field: &str| object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).filter(|v| !v.is_empty());
    if let Some(found) = found("namespace").filter(|found| kind.namespaced() && *found != namespace) {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({found}) does not match the namespace sent on the request ({namespace})"
        )));
    }
    if let (Some(found), Some(name)) = (found("name"), name)
        && found != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({found}) does not match the name on the URL ({name})"
        )));
    }
    Ok((object, warnings))
}

fn create(cluster: &mut Cluster, kind: Kind, namespace: &str, request: &Request) -> Result<Reply, ApiError> {
    let (object, warnings) = decode_body(kind, (namespace, None, None), parse_json(&request.body)?, request, false)?;
    let text = |pointer| object.pointer(pointer).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let name = match (text("/metadata/name"), text("/metadata/generateName")) {
        (Some(name), _) => name,
        (None, Some(prefix)) => format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..5]),
        (None, None) => String::new(),
    };
    let (manager, now) = (manager(request), now_seconds());
    let target = Target { kind, namespace, name: &name, subresource: None, manager: &manager, now: &now };
    let created = cluster.store.create(target, object)?;
    Ok(Reply::Json(StatusCode::CREATED, created, warnings))
}

fn write(
    cluster: &mut Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    subresource: Option<&'static str>,
    request: &Request,
) -> Result<Reply, ApiError> {
    let (manager, now) = (manager(request), now_seconds());
    let target = Target { kind, namespace, name, subresource, manager: &manager, now: &now };
    if request.method == Method::PUT {
        let (object, warnings) =
            decode_body(kind, (namespace, Some(name), subresource), parse_json(&request.body)?, request, false)?;
        return Ok(Reply::Json(StatusCode::OK, cluster.store.replace(target, object)?, warnings));
    }
    match request.content_type.as_str() {
        "application/apply-patch+yaml" => {
            if request.param("fieldManager").is_none() {
                return Err(ApiError::bad_request("PATCH with an apply patch requires the fieldManager parameter"));
            }
            let body: Value = serde_yaml::from_slice(&request.body)
                .map_err(|error| ApiError::bad_request(format!("the apply patch is not valid YAML: {error}")))?;
            let (object, warnings) = decode_body(kind, (namespace, Some(name), subresource), body, request, true)?;
            let existed = cluster.store.get(kind, namespace, name).is_some();
            let applied = cluster.store.apply(target, object, request.flag("force"))?;
            cluster.applies += 1;
            let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(Reply::Json(code, applied, warnings))
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            if request.param("dryRun").is_some() {
                return Err(ApiError::bad_request("dryRun is not supported by this server"));
            }
            let validation = FieldValidation::parse(request.param("fieldValidation"))?;
            let (patched, warnings) = cluster.store.merge_patch(target, &parse_json(&request.body)?, validation)?;
            Ok(Reply::Json(StatusCode::OK, patched, warnings))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn delete_collection(cluster: &mut Cluster, kind: Kind, namespace: &str, request: &Request) -> Result<Reply, ApiError> {
    let filter = filter(request)?;
    let names: Vec<String> = cluster
        .store
        .list(kind, kind.namespaced().then_some(namespace))
        .filter(|object| filter.matches(object))
        .filter_map(super::cluster::object_name)
        .collect();
    let options: Value = if request.body.is_empty() { json!({}) } else { parse_json(&request.body)? };
    let mut deleted = Vec::new();
    for name in names {
        deleted.push(cluster.delete(kind, namespace, &name, &options)?);
    }
    let metadata = json!({ "resourceVersion": cluster.store.revision().to_string() });
    ok_json(StatusCode::OK, list_body(kind, metadata, deleted.into_iter()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_resources() {
        let route = parse_path("/apis/apps/v1/namespaces/prod/deployments/web/status").unwrap();
        assert_eq!(
            route,
            Route {
                kind: Kind::Deployment,
                namespace: Some("prod".into()),
                name: Some("web".into()),
                subresource: Some("status".into())
            }
        );
        assert_eq!(parse_path("/api/v1/namespaces/prod").unwrap().kind, Kind::Namespace);
        assert_eq!(parse_path("/api/v1/namespaces/prod/pods/web-1/log").unwrap().subresource.as_deref(), Some("log"));
        assert_eq!(parse_path("/apis/apps/v1/deployments").unwrap().namespace, None);
        assert!(parse_path("/apis/apps/v1/deployments/web").is_none());
        assert!(parse_path("/api/v1/namespaces/prod/configmaps").is_none());
    }
}
