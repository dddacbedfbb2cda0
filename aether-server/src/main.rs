//! `aether-server`: the control plane binary. `aether-server` serves, `aether-server migrate`
//! applies the database migrations and exits, `aether-server fetch` is the init container that
//! puts an artifact into a Kubernetes pod.

mod cli;

use aether_server::ports::{MetadataStore as _, Runtime as _};
use std::process::ExitCode;
use std::sync::Arc;

use aether_server::artifacts::AnyArtifactStore;
use aether_server::artifacts::local::LocalArtifactStore;
use aether_server::artifacts::s3::S3ArtifactStore;
use aether_server::config::{RuntimeKind, ServerConfig, StorageConfig};
use aether_server::runtime::kubernetes::KubernetesRuntime;
use aether_server::runtime::local::{LocalRuntime, LocalRuntimeConfig};
use aether_server::runtime::{AnyRuntime, NoRuntime};
use aether_server::state::{AppState, Ports, now_ms};
use aether_server::store::SqlStore;
use anyhow::Context as _;
use clap::Parser as _;
use cli::{Cli, Command};

/// SQLite or PostgreSQL metadata, the artifact store `AETHER_STORAGE_MODE` names, and the
/// runtime `AETHER_RUNTIME` names.
struct Server;

impl Ports for Server {
    type Store = SqlStore;
    type Blobs = AnyArtifactStore;
    type Runtime = AnyRuntime<AnyArtifactStore>;
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            if error.use_stderr() && std::env::args().nth(1).as_deref() == Some("fetch") {
                cli::fetch_usage_error(&error);
            }
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).with_ansi(colour).init();
    // kube's and the S3 client's TLS run on rustls: one crypto provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let migrate_only = match cli.command {
        Some(Command::Fetch(args)) => return cli::fetch(args),
        Some(Command::RenderK8s(args)) => return cli::render_k8s(args),
        Some(Command::Migrate) => true,
        None => false,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(migrate_only)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(migrate_only: bool) -> anyhow::Result<()> {
    let mut config = ServerConfig::from_env(|name| std::env::var(name).ok())?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let store = match &config.database_url {
        Some(url) => SqlStore::connect(url).await?,
        None => SqlStore::open_sqlite(&config.data_dir.join("aether.db")).await?,
    };
    store.migrate().await?;
    // The embedded database belongs to one server: a second one on the same data directory is
    // refused, and the leases of a predecessor (necessarily gone) are forgotten at once.
    let _single_replica = match &config.database_url {
        Some(_) => None,
        None => {
            let lock = lock_data_dir(&config.data_dir)?;
            store.clear_leases().await?;
            Some(lock)
        }
    };
    if migrate_only {
        eprintln!("migrations applied");
        return Ok(());
    }
    // Bound first: with `AETHER_LISTEN=...:0` the port is known only now, and presigned URLs of
    // the local store need it unless `AETHER_PUBLIC_URL` says otherwise.
    let listener =
        std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    if std::env::var_os("AETHER_PUBLIC_URL").is_none() {
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        config.public_url = format!("{scheme}://{bound}");
    }
    let blobs: Arc<AnyArtifactStore> = Arc::new(match &config.storage {
        StorageConfig::Local => {
            let secret = load_or_create_secret(&config.data_dir.join("presign.key"))?;
            LocalArtifactStore::new(config.data_dir.join("artifacts"), config.public_url.clone(), secret)?.into()
        }
        StorageConfig::S3(settings) => S3ArtifactStore::connect(settings.clone()).await.into(),
    });
    let runtime = match &config.runtime {
        RuntimeKind::Local => {
            let runtime_config = LocalRuntimeConfig::new(&config.data_dir, config.health_timeout);
            let releases = runtime_config.releases_dir.display().to_string();
            let local = LocalRuntime::new(Arc::clone(&blobs), runtime_config)
                .with_context(|| format!("cannot prepare {releases}"))?;
            AnyRuntime::Local(local)
        }
        RuntimeKind::Kubernetes(settings) => {
            // Fetchers must be able to download for as long as a rollout may take.
            let url_lifetime = config.presign_ttl.max(config.rollout_timeout + std::time::Duration::from_secs(60));
            let kubernetes =
                KubernetesRuntime::connect(Arc::clone(&blobs), settings.clone(), url_lifetime).await.context(
                    "cannot connect to Kubernetes (KUBECONFIG, ~/.kube/config or the in-cluster service account)",
                )?;
            AnyRuntime::Kubernetes(kubernetes)
        }
        RuntimeKind::None => AnyRuntime::None(NoRuntime),
    };
    // Everything that can still fail (TLS files) is done before the one-time admin token is
    // minted, so a failed start never uses it up.
    let tls = match &config.tls {
        Some((cert, key)) => {
            Some(axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
                format!("cannot load AETHER_TLS_CERT={} / AETHER_TLS_KEY={}", cert.display(), key.display())
            })?)
        }
        None => None,
    };
    if config.database_url.is_none()
        && config.static_tokens.is_empty()
        && let Some(token) = aether_server::auth::bootstrap_admin_token(&store, now_ms())
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
    {
        // Shown once: only its hash is stored.
        println!("Generated an admin token (shown only now; store it safely):\n  {token}");
    }
    serve(AppState::<Server>::new(store, blobs, runtime, config), listener, tls).await
}

/// Serves until SIGINT/SIGTERM, reconciling the deployments recorded earlier meanwhile; then lets
/// in-flight requests finish and stops every release.
async fn serve<P: Ports<Store = SqlStore, Blobs = AnyArtifactStore>>(
    state: AppState<P>,
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> anyhow::Result<()> {
    tokio::spawn(aether_server::gc::run_pending_upload_gc(state.clone()));
    tokio::spawn(collect_stale_temp_files(state.clone()));
    let restoring = tokio::spawn({
        let state = state.clone();
        async move {
            if let Err(error) = aether_server::deployer::check_running_releases(&state).await {
                tracing::error!(code = error.code, message = %error.message, "cannot list the running releases to check");
            }
            aether_server::deployer::run_reconciler(state).await;
        }
    });
    let router = aether_server::api::router(state.clone());
    let token = state.shutdown.clone();
    let signalled = shutdown_signal();
    let stopping = async move {
        signalled.await;
        // Ends the log streams, which would otherwise hold the graceful shutdown open forever.
        token.cancel();
    };
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        runtime = state.runtime.name(),
        replica = state.leases.replica_id(),
        "aether-server listening"
    );
    let serving = async {
        match tls {
            Some(tls) => serve_tls(listener, tls, router, stopping).await,
            None => axum::serve(tokio::net::TcpListener::from_std(listener)?, router)
                .with_graceful_shutdown(stopping)
                .await
                .context("server failed"),
        }
    };
    // A request that outlives the grace period is cut off: the releases must still be stopped
    // before a service manager's own deadline kills this process with them orphaned.
    let grace = state.config.shutdown_grace;
    let shutdown = state.shutdown.clone();
    let served = tokio::select! {
        served = serving => served,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the shutdown grace period; closing them");
            Ok(())
        }
    };
    // A release still being restored is dropped, which kills its processes.
    restoring.abort();
    let _ = restoring.await;
    state.runtime.shutdown().await;
    served
}

/// A crash mid-upload can leave the local store's temporary files behind; they are never
/// visible as artifacts, and this removes them once they are older than any upload could take.
async fn collect_stale_temp_files<P: Ports<Blobs = AnyArtifactStore>>(state: AppState<P>) {
    let Some(local) = state.blobs.local() else { return };
    loop {
        if let Err(error) = local.gc_stale_temp(state.config.pending_ttl).await {
            tracing::warn!(%error, "removing stale upload files failed; will retry");
        }
        tokio::time::sleep(state.config.pending_gc_interval).await;
    }
}

/// HTTPS with rustls; shuts down as gracefully as plain HTTP.
async fn serve_tls(
    listener: std::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    router: axum::Router,
    stopping: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        stopping.await;
        on_signal.graceful_shutdown(None);
    });
    axum_server::tls_rustls::from_tcp_rustls(listener, tls)?
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .context("server failed")
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before the process exits.
/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: a service manager may send SIGTERM the moment the server says it listens, and
/// that must stop it gracefully rather than kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = received(interrupt.as_mut()) => {}
            _ = received(terminate.as_mut()) => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

/// The next delivery of `signal`; never, when its handler could not be installed.
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Holds an exclusive lock on `<data dir>/aether-server.lock` for as long as the file lives.
fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("aether-server.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        anyhow::anyhow!(
            "another aether-server uses {} (the embedded SQLite database serves one replica; \
             run several replicas on PostgreSQL with DATABASE_URL)",
            data_dir.display()
        )
    })?;
    Ok(file)
}

/// The key that signs presigned upload URLs, kept in the data directory (mode 0600) so URLs
/// handed out before a restart stay valid.
fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret).with_context(|| format!("{} is corrupt", path.display()))?;
        return Ok(secret);
    }
    let secret: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(hex::encode(secret).as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}
