//! One method per API operation, named after it. GET and HEAD are retried; a POST only when
//! it carries an idempotency key, because the server then answers a replay with the first
//! result instead of acting twice.

use aether_core::api::{
    AddPublicKeyRequest, AppResponse, ArtifactPage, ArtifactResponse, CompleteRequest, CompleteResponse,
    CreateAppRequest, CreateDeploymentRequest, CreateTokenRequest, CreateTokenResponse, DeploymentResponse,
    MultipartCompleteRequest, MultipartInitRequest, MultipartInitResponse, PresignPartRequest, PresignPartResponse,
    PresignRequest, PresignResponse, PublicKeyResponse, RollbackRequest,
};
use aether_core::wire::{AppName, Digest};
use reqwest::Method;

use super::Client;
use super::logs::{LogStream, LogsQuery};
use crate::error::Error;

impl Client {
    /// `GET /healthz`: the server process answers.
    pub async fn health(&self) -> Result<(), Error> {
        let url = self.url(&["healthz"])?;
        self.send(self.request(Method::GET, url), true).await.map(drop)
    }

    /// `GET /readyz`: the server can reach its database. Not retried: a readiness check
    /// reports the present state, and a 503 is its answer rather than a transient failure.
    pub async fn ready(&self) -> Result<(), Error> {
        let url = self.url(&["readyz"])?;
        self.send(self.request(Method::GET, url), false).await.map(drop)
    }

    /// `POST /apps`.
    pub async fn create_app(&self, name: &AppName) -> Result<AppResponse, Error> {
        let body = CreateAppRequest { name: name.clone() };
        self.fetch(self.request(Method::POST, self.url(&["apps"])?).json(&body), false).await
    }

    /// `GET /apps`.
    pub async fn list_apps(&self) -> Result<Vec<AppResponse>, Error> {
        self.fetch(self.request(Method::GET, self.url(&["apps"])?), true).await
    }

    /// `GET /apps/{app}/deployments`, newest first.
    pub async fn app_deployments(&self, app: &AppName) -> Result<Vec<DeploymentResponse>, Error> {
        let url = self.url(&["apps", app.as_str(), "deployments"])?;
        self.fetch(self.request(Method::GET, url), true).await
    }

    /// `POST /apps/{app}/public-keys`: registers an Ed25519 key (64 hex characters).
    pub async fn add_public_key(&self, app: &AppName, public_key_hex: &str) -> Result<PublicKeyResponse, Error> {
        let url = self.url(&["apps", app.as_str(), "public-keys"])?;
        let body = AddPublicKeyRequest { public_key_hex: public_key_hex.to_owned() };
        self.fetch(self.request(Method::POST, url).json(&body), false).await
    }

    /// `GET /apps/{app}/logs`: recent lines, oldest first, filtered by `query`.
    pub async fn app_logs(&self, app: &AppName, query: &LogsQuery) -> Result<Vec<String>, Error> {
        let url = self.logs_url(app, query, false)?;
        self.fetch(self.request(Method::GET, url), true).await
    }

    /// `GET /apps/{app}/logs?follow=true`: the recent lines, then every new line as the app
    /// writes it, until the caller drops the stream or the server goes away.
    pub async fn follow_logs(&self, app: &AppName, query: &LogsQuery) -> Result<LogStream, Error> {
        let url = self.logs_url(app, query, true)?;
        // No overall timeout: a followed log stays open as long as the user watches it.
        let mut request = self.http.request(Method::GET, url.clone()).header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let (response, url) = self.send(request, true).await?;
        Ok(LogStream::new(response, url))
    }

    fn logs_url(&self, app: &AppName, query: &LogsQuery, follow: bool) -> Result<reqwest::Url, Error> {
        let mut url = self.url(&["apps", app.as_str(), "logs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(tail) = query.tail {
                pairs.append_pair("tail", &tail.to_string());
            }
            if let Some(since_ms) = query.since_ms {
                pairs.append_pair("since_ms", &since_ms.to_string());
            }
            if let Some(deployment) = &query.deployment {
                pairs.append_pair("deployment", deployment);
            }
            if follow {
                pairs.append_pair("follow", "true");
            }
        }
        Ok(url)
    }

    /// `HEAD /artifacts/{digest}`: whether the artifact is stored.
    pub async fn artifact_exists(&self, digest: &Digest) -> Result<bool, Error> {
        let url = self.url(&["artifacts", digest.as_str()])?;
        match self.send(self.request(Method::HEAD, url), true).await {
            Ok(_) => Ok(true),
            Err(Error::Api { status: 404, .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `GET /artifacts/{digest}`: the artifact's metadata.
    pub async fn get_artifact(&self, digest: &Digest) -> Result<ArtifactResponse, Error> {
        let url = self.url(&["artifacts", digest.as_str()])?;
        self.fetch(self.request(Method::GET, url), true).await
    }

    /// `GET /artifacts`, newest first; pass the page's `next_cursor` to get the next one.
    pub async fn list_artifacts(&self, cursor: Option<&str>, limit: Option<u32>) -> Result<ArtifactPage, Error> {
        let mut url = self.url(&["artifacts"])?;
        if cursor.is_some() || limit.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        self.fetch(self.request(Method::GET, url), true).await
    }

    /// `POST /artifacts/presign`: where to PUT the bytes, or method `NONE` when stored already.
    pub async fn presign(&self, request: &PresignRequest) -> Result<PresignResponse, Error> {
        let url = self.url(&["artifacts", "presign"])?;
        self.fetch(self.request(Method::POST, url).json(request), false).await
    }

    /// `POST /artifacts/complete`: verifies the uploaded bytes and registers the artifact.
    pub async fn complete(&self, request: &CompleteRequest) -> Result<CompleteResponse, Error> {
        let url = self.url(&["artifacts", "complete"])?;
        let idempotent = request.idempotency_key.is_some();
        self.fetch(self.request(Method::POST, url).json(request), idempotent).await
    }

    /// `POST /artifacts/multipart/init`.
    pub async fn multipart_init(&self, request: &MultipartInitRequest) -> Result<MultipartInitResponse, Error> {
        let url = self.url(&["artifacts", "multipart", "init"])?;
        self.fetch(self.request(Method::POST, url).json(request), false).await
    }

    /// `POST /artifacts/multipart/presign-part`.
    pub async fn presign_part(&self, request: &PresignPartRequest) -> Result<PresignPartResponse, Error> {
        let url = self.url(&["artifacts", "multipart", "presign-part"])?;
        self.fetch(self.request(Method::POST, url).json(request), false).await
    }

    /// `POST /artifacts/multipart/complete`: assembles the parts (in `part_number` order).
    pub async fn multipart_complete(&self, request: &MultipartCompleteRequest) -> Result<CompleteResponse, Error> {
        let url = self.url(&["artifacts", "multipart", "complete"])?;
        let idempotent = request.idempotency_key.is_some();
        self.fetch(self.request(Method::POST, url).json(request), idempotent).await
    }

    /// `POST /deployments`.
    pub async fn create_deployment(&self, request: &CreateDeploymentRequest) -> Result<DeploymentResponse, Error> {
        let url = self.url(&["deployments"])?;
        let idempotent = request.idempotency_key.is_some();
        self.fetch(self.request(Method::POST, url).json(request), idempotent).await
    }

    /// `GET /deployments/{id}`, with its events.
    pub async fn get_deployment(&self, id: &str) -> Result<DeploymentResponse, Error> {
        self.fetch(self.request(Method::GET, self.url(&["deployments", id])?), true).await
    }

    /// `POST /apps/{app}/rollback`: redeploys deployment `to`, or the previous release.
    pub async fn rollback(&self, app: &AppName, to: Option<&str>) -> Result<DeploymentResponse, Error> {
        let url = self.url(&["apps", app.as_str(), "rollback"])?;
        let body = RollbackRequest { to: to.map(str::to_owned) };
        self.fetch(self.request(Method::POST, url).json(&body), false).await
    }

    /// `POST /tokens` (admin): the secret is in the answer and nowhere else.
    pub async fn create_token(&self, request: &CreateTokenRequest) -> Result<CreateTokenResponse, Error> {
        self.fetch(self.request(Method::POST, self.url(&["tokens"])?).json(request), false).await
    }

    /// `DELETE /tokens/{id}` (admin). Not retried: a repeat after a lost answer would report
    /// 404 for a token that was in fact revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        let url = self.url(&["tokens", id])?;
        self.send(self.request(Method::DELETE, url), false).await.map(drop)
    }
}
