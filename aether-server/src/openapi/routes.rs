//! Every operation of the API, with the role it needs and the Rust types of what it takes and
//! answers. `api::router` mounts the handlers; a test checks that both list the same routes, and
//! [`crate::auth`] takes each route's role from here, so the document cannot drift from what the
//! server enforces.

use aether_core::api::{
    AddPublicKeyRequest, AppResponse, ArtifactPage, ArtifactResponse, CompleteRequest, CompleteResponse,
    CreateAppRequest, CreateDeploymentRequest, CreateTokenRequest, CreateTokenResponse, DeploymentResponse,
    LegacyUploadResponse, MultipartCompleteRequest, MultipartInitRequest, MultipartInitResponse, PresignPartRequest,
    PresignPartResponse, PresignRequest, PresignResponse, PublicKeyResponse, RollbackRequest,
};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::model::Role;
use crate::routes::apps::LogsQuery;
use crate::routes::artifacts::{LegacyHeaders, LegacyQuery, ListQuery};

/// Component schemas collected while the document is built.
pub type Schemas = Vec<(String, RefOr<Schema>)>;
/// Registers a type's schema (and those it refers to) and returns a reference to it.
pub type SchemaOf = fn(&mut Schemas) -> RefOr<Schema>;

/// What travels in a request or a response.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Empty,
    /// `application/json` of a Rust type.
    Json(SchemaOf),
    /// Text of the given media type.
    Text(&'static str),
    /// Raw bytes of the given media type (artifacts).
    Bytes(&'static str),
    /// A JSON array of rendered log lines, or with `follow=true` an event stream whose every
    /// event's `data` is one rendered line (and an `error` event's `data` why the stream ended).
    LogLines,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// The least role that may call it; `None` for public routes (presigned URLs carry their
    /// own authorisation).
    pub role: Option<Role>,
    /// Query and header parameters (path parameters follow from the path's `{names}`).
    pub parameters: Option<fn() -> Vec<Parameter>>,
    pub request: Body,
    /// Whether the request body may be left out.
    pub request_optional: bool,
    pub success: (u16, &'static str, Body),
    /// Error statuses particular to it; [`Route::error_statuses`] adds the common ones.
    pub errors: &'static [u16],
    pub deprecated: bool,
}

impl Route {
    const fn new(method: &'static str, path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            operation_id,
            summary,
            role: None,
            parameters: None,
            request: Body::Empty,
            request_optional: false,
            success: (200, "", Body::Empty),
            errors: &[],
            deprecated: false,
        }
    }

    const fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    const fn parameters(mut self, parameters: fn() -> Vec<Parameter>) -> Self {
        self.parameters = Some(parameters);
        self
    }

    const fn request(mut self, body: Body) -> Self {
        self.request = body;
        self
    }

    const fn optional_request(mut self, body: Body) -> Self {
        self.request = body;
        self.request_optional = true;
        self
    }

    const fn answers(mut self, status: u16, description: &'static str, body: Body) -> Self {
        self.success = (status, description, body);
        self
    }

    const fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    const fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }

    pub const fn authenticated(&self) -> bool {
        self.role.is_some()
    }

    /// Every error status it may answer with: its own, 401/403/503 when authenticated (no or a
    /// bad token, too small a role, the database down) and 400/413/415 for a JSON body.
    pub fn error_statuses(&self) -> Vec<u16> {
        let mut statuses = self.errors.to_vec();
        if self.authenticated() {
            statuses.extend([401, 403, 503]);
        }
        if matches!(self.request, Body::Json(_)) {
            statuses.extend([400, 413, 415]);
        }
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }
}

/// `T`'s schema, registered as a component, by reference.
pub fn json<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    utoipa::openapi::Ref::from_schema_name(T::name()).into()
}

/// An array of `T`.
pub fn json_list<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    utoipa::openapi::ArrayBuilder::new().items(json::<T>(schemas)).into()
}

/// A JSON object of no fixed shape (the OpenAPI document itself).
fn any_object(_: &mut Schemas) -> RefOr<Schema> {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Object).into()
}

fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

fn legacy_parameters() -> Vec<Parameter> {
    let mut parameters = query::<LegacyQuery>();
    parameters.extend(LegacyHeaders::into_params(|| Some(ParameterIn::Header)));
    parameters
}

pub const ROUTES: &[Route] = &[
    Route::new("GET", "/healthz", "healthz", "Liveness: the process answers").answers(
        200,
        "alive",
        Body::Text("text/plain"),
    ),
    Route::new("GET", "/readyz", "readyz", "Readiness: the database and the artifact store answer")
        .answers(200, "ready", Body::Text("text/plain"))
        .errors(&[503]),
    Route::new("GET", "/metrics", "metrics", "Prometheus metrics").answers(
        200,
        "the text exposition format",
        Body::Text("text/plain"),
    ),
    Route::new("GET", "/openapi.json", "openapi", "This document").answers(200, "OpenAPI 3.1", Body::Json(any_object)),
    Route::new("POST", "/apps", "createApp", "Create an app")
        .role(Role::Deployer)
        .request(Body::Json(json::<CreateAppRequest>))
        .answers(201, "the app", Body::Json(json::<AppResponse>))
        .errors(&[409]),
    Route::new("GET", "/apps", "listApps", "List apps, by name").role(Role::Reader).answers(
        200,
        "every app",
        Body::Json(json_list::<AppResponse>),
    ),
    Route::new("GET", "/apps/{app}/deployments", "listDeployments", "An app's deployments, newest first")
        .role(Role::Reader)
        .answers(200, "the deployments, without their events", Body::Json(json_list::<DeploymentResponse>))
        .errors(&[400, 404]),
    Route::new("POST", "/apps/{app}/public-keys", "addPublicKey", "Register an Ed25519 public key for an app")
        .role(Role::Admin)
        .request(Body::Json(json::<AddPublicKeyRequest>))
        .answers(201, "the key", Body::Json(json::<PublicKeyResponse>))
        .errors(&[404, 409]),
    Route::new("GET", "/apps/{app}/logs", "appLogs", "An app's recent log lines, or a live stream of them")
        .role(Role::Reader)
        .parameters(query::<LogsQuery>)
        .answers(200, "the lines, oldest first", Body::LogLines)
        .errors(&[400, 404, 501]),
    Route::new("POST", "/apps/{app}/rollback", "rollback", "Redeploy the previous (or a given) release")
        .role(Role::Deployer)
        .optional_request(Body::Json(json::<RollbackRequest>))
        .answers(201, "the new deployment", Body::Json(json::<DeploymentResponse>))
        .errors(&[404, 409]),
    Route::new("GET", "/artifacts", "listArtifacts", "Stored artifacts, newest first, a page at a time")
        .role(Role::Reader)
        .parameters(query::<ListQuery>)
        .answers(200, "a page", Body::Json(json::<ArtifactPage>))
        .errors(&[400]),
    Route::new("POST", "/artifacts", "uploadArtifact", "Upload an artifact in one request (use presign instead)")
        .role(Role::Deployer)
        .parameters(legacy_parameters)
        .request(Body::Bytes("application/octet-stream"))
        .answers(200, "the artifact, stored and verified", Body::Json(json::<LegacyUploadResponse>))
        .errors(&[400, 404, 413, 429, 507])
        .deprecated(),
    Route::new("HEAD", "/artifacts/{digest}", "artifactExists", "Whether an artifact is stored")
        .role(Role::Reader)
        .answers(200, "stored; `x-aether-artifact-size` gives its size", Body::Empty)
        .errors(&[400, 404]),
    Route::new("GET", "/artifacts/{digest}", "getArtifact", "An artifact's metadata")
        .role(Role::Reader)
        .answers(200, "the artifact", Body::Json(json::<ArtifactResponse>))
        .errors(&[400, 404]),
    Route::new("POST", "/artifacts/presign", "presignUpload", "Start an upload: where to PUT the artifact")
        .role(Role::Deployer)
        .request(Body::Json(json::<PresignRequest>))
        .answers(
            200,
            "where to PUT it, or `method: NONE` when it is stored already",
            Body::Json(json::<PresignResponse>),
        )
        .errors(&[404]),
    Route::new("POST", "/artifacts/complete", "completeUpload", "Finish an upload: verify and register the artifact")
        .role(Role::Deployer)
        .request(Body::Json(json::<CompleteRequest>))
        .answers(200, "the artifact", Body::Json(json::<CompleteResponse>))
        .errors(&[404, 409, 507]),
    Route::new("POST", "/artifacts/multipart/init", "startMultipartUpload", "Start a multipart upload")
        .role(Role::Deployer)
        .request(Body::Json(json::<MultipartInitRequest>))
        .answers(200, "the upload", Body::Json(json::<MultipartInitResponse>))
        .errors(&[404]),
    Route::new("POST", "/artifacts/multipart/presign-part", "presignPart", "Where to PUT one part")
        .role(Role::Deployer)
        .request(Body::Json(json::<PresignPartRequest>))
        .answers(200, "where to PUT the part", Body::Json(json::<PresignPartResponse>))
        .errors(&[404, 409]),
    Route::new("POST", "/artifacts/multipart/complete", "completeMultipartUpload", "Assemble the parts and register")
        .role(Role::Deployer)
        .request(Body::Json(json::<MultipartCompleteRequest>))
        .answers(200, "the artifact", Body::Json(json::<CompleteResponse>))
        .errors(&[404, 409, 507]),
    Route::new("PUT", "/uploads/{token}", "putPresigned", "Presigned upload target (local artifact store only)")
        .request(Body::Bytes("application/octet-stream"))
        .answers(200, "stored; `etag` names a multipart part", Body::Empty)
        .errors(&[400, 403, 404, 409, 412, 413, 429, 503, 507]),
    Route::new("GET", "/downloads/{token}", "getPresigned", "Presigned download (local artifact store only)")
        .answers(200, "the artifact", Body::Bytes("application/gzip"))
        .errors(&[400, 403, 404, 503]),
    Route::new("POST", "/deployments", "createDeployment", "Deploy an artifact to an app")
        .role(Role::Deployer)
        .request(Body::Json(json::<CreateDeploymentRequest>))
        .answers(
            201,
            "the deployment, pending; a replay with the same `idempotency_key` answers the deployment it created, as it is now",
            Body::Json(json::<DeploymentResponse>),
        )
        .errors(&[403, 404, 409]),
    Route::new("GET", "/deployments/{id}", "getDeployment", "A deployment with its events")
        .role(Role::Reader)
        .answers(200, "the deployment", Body::Json(json::<DeploymentResponse>))
        .errors(&[404]),
    Route::new("POST", "/tokens", "createToken", "Mint an API token (the secret is shown once)")
        .role(Role::Admin)
        .request(Body::Json(json::<CreateTokenRequest>))
        .answers(201, "the token", Body::Json(json::<CreateTokenResponse>)),
    Route::new("DELETE", "/tokens/{id}", "revokeToken", "Revoke an API token")
        .role(Role::Admin)
        .answers(204, "revoked", Body::Empty)
        .errors(&[404]),
];

/// Where one operation's answer supplies another's path parameter (OpenAPI links), so that
/// clients and API testers can chain them: (from, to, parameter, runtime expression).
pub const LINKS: &[(&str, &str, &str, &str)] = &[
    ("createApp", "listDeployments", "app", "$response.body#/name"),
    ("createApp", "appLogs", "app", "$response.body#/name"),
    ("createApp", "rollback", "app", "$response.body#/name"),
    ("createApp", "addPublicKey", "app", "$response.body#/name"),
    ("createDeployment", "getDeployment", "id", "$response.body#/id"),
    ("rollback", "getDeployment", "id", "$response.body#/id"),
    ("createToken", "revokeToken", "id", "$response.body#/id"),
];

/// The route `method path` names, `path` being a route template such as `/apps/{app}/logs`;
/// `HEAD` finds the `GET` of a path without a `HEAD` of its own, as the router does.
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    let exact = ROUTES.iter().find(|r| r.method == method && r.path == path);
    exact.or_else(|| (method == "HEAD").then(|| find("GET", path)).flatten())
}
