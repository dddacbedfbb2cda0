//! `GET /openapi.json`, generated with utoipa from the route table below, which mirrors
//! `api::router` (a test checks that every listed route answers and every route is listed).

use axum::Json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required,
    Type,
};

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Success status and what it returns.
    pub success: (u16, &'static str),
    /// Error statuses the operation can answer with (besides 401/403 on authenticated routes).
    pub errors: &'static [u16],
    pub authenticated: bool,
    pub json_body: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    success: (u16, &'static str),
    errors: &'static [u16],
    authenticated: bool,
    json_body: bool,
) -> Route {
    Route { method, path, summary, success, errors, authenticated, json_body }
}

pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", "Liveness", (200, "ok"), &[], false, false),
    route("GET", "/readyz", "Readiness: 503 while the database is unreachable", (200, "ready"), &[503], false, false),
    route("GET", "/metrics", "Prometheus metrics", (200, "text exposition"), &[], false, false),
    route("GET", "/openapi.json", "This document", (200, "OpenAPI 3.1"), &[], false, false),
    route("POST", "/apps", "Create an app", (201, "the app"), &[400, 409, 413, 415], true, true),
    route("GET", "/apps", "List apps", (200, "apps"), &[503], true, false),
    route(
        "GET",
        "/apps/{app}/deployments",
        "An app's deployments, newest first",
        (200, "deployments"),
        &[400, 404],
        true,
        false,
    ),
    route(
        "POST",
        "/apps/{app}/public-keys",
        "Register an Ed25519 public key",
        (201, "the key"),
        &[400, 404, 409],
        true,
        true,
    ),
    route(
        "GET",
        "/apps/{app}/logs",
        "The app's recent log lines, or a live stream of them",
        (200, "a JSON array of lines; with follow=true an event stream, one line per event's data"),
        &[400, 404, 501],
        true,
        false,
    ),
    route(
        "POST",
        "/apps/{app}/rollback",
        "Redeploy the previous (or given) release",
        (201, "the new deployment"),
        &[400, 403, 404, 409],
        true,
        true,
    ),
    route("GET", "/artifacts", "List artifacts, newest first, paginated", (200, "a page"), &[400], true, false),
    route(
        "POST",
        "/artifacts",
        "Deprecated direct upload",
        (200, "the stored artifact"),
        &[400, 403, 413, 429],
        true,
        false,
    ),
    route("HEAD", "/artifacts/{digest}", "Whether an artifact is stored", (200, "stored"), &[400, 404], true, false),
    route("GET", "/artifacts/{digest}", "Artifact metadata", (200, "the artifact"), &[400, 404], true, false),
    route(
        "POST",
        "/artifacts/presign",
        "Start a two-phase upload",
        (200, "where to PUT, or method NONE"),
        &[400, 403, 404, 413],
        true,
        true,
    ),
    route(
        "POST",
        "/artifacts/complete",
        "Finish a two-phase upload",
        (200, "the artifact"),
        &[400, 403, 404, 409],
        true,
        true,
    ),
    route(
        "POST",
        "/artifacts/multipart/init",
        "Start a multipart upload",
        (200, "the upload id"),
        &[400, 403, 404, 413],
        true,
        true,
    ),
    route(
        "POST",
        "/artifacts/multipart/presign-part",
        "Presign one part",
        (200, "where to PUT the part"),
        &[400, 404],
        true,
        true,
    ),
    route(
        "POST",
        "/artifacts/multipart/complete",
        "Assemble the parts",
        (200, "the artifact"),
        &[400, 403, 404, 409],
        true,
        true,
    ),
    route(
        "PUT",
        "/uploads/{token}",
        "Presigned upload target of the local store",
        (200, "stored; ETag for parts"),
        &[400, 404, 413, 429],
        false,
        false,
    ),
    route(
        "POST",
        "/deployments",
        "Deploy an artifact to an app",
        (201, "the deployment"),
        &[400, 403, 404, 409],
        true,
        true,
    ),
    route("GET", "/deployments/{id}", "A deployment with its events", (200, "the deployment"), &[404], true, false),
    route("POST", "/tokens", "Mint a token (admin)", (201, "the token, shown once"), &[400], true, true),
    route("DELETE", "/tokens/{id}", "Revoke a token (admin)", (204, "revoked"), &[404], true, false),
];

/// Query parameters of the operations that take any, with what each means.
fn query_parameters(route: &Route) -> &'static [(&'static str, &'static str)] {
    match (route.method, route.path) {
        ("GET", "/apps/{app}/logs") => &[
            ("tail", "the newest this many lines (default 100, at most 10000)"),
            ("since_ms", "only lines at or after this Unix millisecond"),
            ("deployment", "only this deployment's lines"),
            ("follow", "true: answer text/event-stream, the tail first, then each new line as it comes"),
        ],
        _ => &[],
    }
}

fn method(raw: &str) -> HttpMethod {
    match raw {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "HEAD" => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

fn error_envelope() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .property("code", ObjectBuilder::new().schema_type(Type::String))
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("code")
        .required("message")
        .into()
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let json = || ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::Object))).build();
    let mut success = ResponseBuilder::new().description(route.success.1).content("application/json", json());
    if query_parameters(route).iter().any(|(name, _)| *name == "follow") {
        let line = ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build();
        success = success.content("text/event-stream", line);
    }
    let mut responses = ResponsesBuilder::new().response(route.success.0.to_string(), success);
    let auth_errors: &[u16] = if route.authenticated { &[401, 403] } else { &[] };
    for status in route.errors.iter().chain(auth_errors) {
        let envelope =
            ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorEnvelope"))).build();
        responses = responses.response(
            status.to_string(),
            ResponseBuilder::new().description("error envelope").content("application/json", envelope),
        );
    }
    let mut op = OperationBuilder::new().summary(Some(route.summary)).responses(responses.build());
    for segment in route.path.split('/').filter(|s| s.starts_with('{')) {
        let name = segment.trim_matches(|c| c == '{' || c == '}');
        op = op.parameter(ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True));
    }
    for (name, description) in query_parameters(route) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description)),
        );
    }
    if route.json_body {
        op = op.request_body(Some(RequestBodyBuilder::new().content("application/json", json()).build()));
    }
    if route.authenticated {
        op = op.security(SecurityRequirement::new("bearer_auth", Vec::<String>::new()));
    }
    op.build()
}

/// The document itself.
pub fn spec() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        paths = paths.path(route.path, PathItem::new(method(route.method), operation(route)));
    }
    let bearer = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("Aether control plane").version(env!("CARGO_PKG_VERSION")).build())
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new()
                .schema("ErrorEnvelope", error_envelope())
                .security_scheme("bearer_auth", bearer)
                .build(),
        ))
        .build()
}

pub async fn document() -> Json<OpenApi> {
    Json(spec())
}
