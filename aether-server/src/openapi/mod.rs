//! `GET /openapi.json`: the API's contract, built from the route table in [`routes`] and the
//! `ToSchema`/`IntoParams` of the very types the handlers (de)serialise.

mod routes;

pub use routes::{Body, LINKS, ROUTES, Route, find};

use aether_core::wire::{AppName, Digest, ErrorEnvelope};
use axum::Json;
use axum::extract::State;
use utoipa::PartialSchema as _;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, RefOr, Required, Schema, Type,
};

use crate::state::{AppState, Ports};
use routes::{Schemas, json};

fn method(raw: &str) -> HttpMethod {
    match raw {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "HEAD" => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A path parameter, typed by its name: app names and digests with their patterns, ids as UUIDs.
fn path_parameter(name: &str) -> Parameter {
    let (schema, description): (RefOr<Schema>, &str) = match name {
        "app" => (AppName::schema(), "the app's name"),
        "digest" => (Digest::schema(), "the artifact's SHA-256"),
        "id" => (aether_core::wire::Id::schema(), "its id"),
        _ => (string().min_length(Some(1)).into(), "the signed token of a presigned URL"),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn content(body: Body, schemas: &mut Schemas) -> Vec<(&'static str, utoipa::openapi::Content)> {
    let text = || ContentBuilder::new().schema(Some(string())).build();
    match body {
        Body::Empty => Vec::new(),
        Body::Json(schema) => vec![("application/json", ContentBuilder::new().schema(Some(schema(schemas))).build())],
        Body::Text(media_type) => vec![(media_type, text())],
        Body::Bytes(media_type) => {
            let bytes = string().content_media_type(media_type);
            vec![(media_type, ContentBuilder::new().schema(Some(bytes)).build())]
        }
        Body::LogLines => {
            let lines = utoipa::openapi::ArrayBuilder::new().items(
                string().description(Some("`<RFC 3339 time> <deployment id, 8 characters> <stdout|stderr>: <text>`")),
            );
            let events = string().description(Some(
                "Server-sent events (with `follow=true`): each event's `data` is one line as in the JSON \
                 form; an event named `error` carries why the stream ended early.",
            ));
            vec![
                ("application/json", ContentBuilder::new().schema(Some(lines)).build()),
                ("text/event-stream", ContentBuilder::new().schema(Some(events)).build()),
            ]
        }
    }
}

fn success(route: &Route, schemas: &mut Schemas) -> Response {
    let (_, description, body) = route.success;
    let mut response = ResponseBuilder::new().description(description);
    for (media_type, content) in content(body, schemas) {
        response = response.content(media_type, content);
    }
    let header = |description: &str| {
        HeaderBuilder::new().schema(Some(string())).description(Some(description.to_owned())).build()
    };
    match (route.method, route.path) {
        ("HEAD", "/artifacts/{digest}") => {
            response = response.header("x-aether-artifact-size", header("the artifact's size in bytes"));
        }
        ("PUT", "/uploads/{token}") => response = response.header("etag", header("names the part it stored")),
        _ => {}
    }
    for (_, to, parameter, expression) in LINKS.iter().filter(|link| link.0 == route.operation_id) {
        let link = LinkBuilder::new().operation_id(*to).parameter(*parameter, *expression);
        response = response.link(*to, link.build());
    }
    response.build()
}

fn error(route: &Route, status: u16, schemas: &mut Schemas) -> Response {
    let mut response = ResponseBuilder::new().description("the error envelope: `code` says what went wrong");
    // HEAD answers have no body to carry an envelope.
    if route.method != "HEAD" {
        let envelope = ContentBuilder::new().schema(Some(json::<ErrorEnvelope>(schemas))).build();
        response = response.content("application/json", envelope);
    }
    if status == 503 {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        let description = "seconds to wait before retrying";
        response = response
            .header("retry-after", HeaderBuilder::new().schema(Some(seconds)).description(Some(description)).build());
    }
    response.build()
}

fn operation(route: &Route, schemas: &mut Schemas) -> utoipa::openapi::path::Operation {
    let mut responses = ResponsesBuilder::new().response(route.success.0.to_string(), success(route, schemas));
    for status in route.error_statuses() {
        responses = responses.response(status.to_string(), error(route, status, schemas));
    }
    let who = match route.role {
        Some(role) => format!("Needs a token with the `{}` role or above.", role.as_str()),
        None => "Public.".to_owned(),
    };
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.operation_id))
        .summary(Some(route.summary))
        .description(Some(who))
        .responses(responses.build());
    if route.deprecated {
        op = op.deprecated(Some(utoipa::openapi::Deprecated::True));
    }
    for segment in route.path.split('/').filter(|s| s.starts_with('{')) {
        op = op.parameter(path_parameter(segment.trim_matches(|c| c == '{' || c == '}')));
    }
    for parameter in route.parameters.map(|parameters| parameters()).unwrap_or_default() {
        op = op.parameter(parameter);
    }
    let request = content(route.request, schemas);
    if !request.is_empty() {
        let required = if route.request_optional { Required::False } else { Required::True };
        let mut body = RequestBodyBuilder::new().required(Some(required));
        for (media_type, content) in request {
            body = body.content(media_type, content);
        }
        op = op.request_body(Some(body.build()));
    }
    if route.authenticated() {
        op = op.security(SecurityRequirement::new("bearer_auth", Vec::<String>::new()));
    }
    op.build()
}

/// What a server's document says that depends on its configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServerFacts<'a> {
    /// The runtime's name: the only value `CreateDeploymentRequest.runtime` may have.
    pub runtime: &'a str,
    /// `AETHER_MAX_ARTIFACT_SIZE_BYTES`: the largest `size_bytes` an upload may declare.
    pub max_artifact_size_bytes: u64,
}

/// The `field` schema of component `component`, to refine it.
fn field<'s>(schemas: &'s mut Schemas, component: &str, field: &str) -> Option<&'s mut utoipa::openapi::Object> {
    let (_, schema) = schemas.iter_mut().find(|(name, _)| name == component)?;
    let RefOr::T(Schema::Object(object)) = schema else { return None };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(field)) => Some(field),
        _ => None,
    }
}

/// Narrows what depends on the server's configuration to what this one accepts.
fn fit_to(schemas: &mut Schemas, facts: ServerFacts<'_>) {
    if let Some(runtime) = field(schemas, "CreateDeploymentRequest", "runtime") {
        runtime.enum_values = Some(vec![facts.runtime.into(), serde_json::Value::Null]);
    }
    for component in ["PresignRequest", "MultipartInitRequest", "CompleteRequest", "MultipartCompleteRequest"] {
        if let Some(size) = field(schemas, component, "size_bytes") {
            size.maximum = Some(facts.max_artifact_size_bytes.into());
        }
    }
}

/// The document; with `facts`, of a server so configured.
pub fn spec(facts: Option<ServerFacts<'_>>) -> OpenApi {
    let mut schemas = Schemas::new();
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        paths = paths.path(route.path, PathItem::new(method(route.method), operation(route, &mut schemas)));
    }
    if let Some(facts) = facts {
        fit_to(&mut schemas, facts);
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let bearer = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    let description = "Aether's control plane. Errors are `{\"code\", \"message\"}` envelopes; a 503 \
                       carries `Retry-After`.";
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Aether control plane")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .build(),
        )
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new().schemas_from_iter(schemas).security_scheme("bearer_auth", bearer).build(),
        ))
        .build()
}

pub async fn document<P: Ports>(State(state): State<AppState<P>>) -> Json<OpenApi> {
    use crate::ports::Runtime as _;
    let facts =
        ServerFacts { runtime: state.runtime.name(), max_artifact_size_bytes: state.config.max_artifact_size_bytes };
    Json(spec(Some(facts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_schema_is_a_component() {
        let document = serde_json::to_value(spec(None)).unwrap_or_default();
        let text = document.to_string();
        let components = &document["components"]["schemas"];
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(components[name].is_object(), "{name} is referenced but not defined");
        }
        assert!(components["ErrorEnvelope"].is_object());
    }
}
