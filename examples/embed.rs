//! Deploys a Node project from a Rust program through aether-sdk: the same pipeline as
//! `aether deploy` (install, pack, describe, sign, upload, roll out, wait), as one call.
//!
//! ```sh
//! cargo run -p aether-sdk --example embed -- examples/sample-node
//! ```
//!
//! The control plane and token come from the same places the CLI reads: `AETHER_API_BASE`,
//! `AETHER_TOKEN`, the session `aether login` saved, or `http://127.0.0.1:8080`.

use std::process::ExitCode;

use aether_sdk::client::Client;
use aether_sdk::config::Paths;
use aether_sdk::connect::{Overrides, client_config};
use aether_sdk::{BuildOptions, DeployEvent, DeployOptions, deploy};

#[tokio::main]
async fn main() -> ExitCode {
    let project = std::env::args().nth(1).unwrap_or_else(|| "examples/sample-node".to_owned());
    match run(&project).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("deploy failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(project: &str) -> Result<(), aether_sdk::Error> {
    let paths = Paths::from_env(|name| std::env::var(name).ok());
    let client = Client::new(client_config(&Overrides::default(), |name| std::env::var(name).ok(), &paths)?)?;
    let options = DeployOptions::new(BuildOptions::new(project, &paths.cache_dir));
    let report = deploy(&client, options, |event| {
        if let DeployEvent::Status(status) = event {
            eprintln!("deployment is {}", status.as_str());
        }
    })
    .await?;
    println!(
        "{} -> deployment {} is {} at {} ({} bytes uploaded in {} ms total)",
        report.app,
        report.deployment_id,
        report.status.as_str(),
        report.url.as_deref().unwrap_or("(no URL)"),
        report.uploaded_bytes,
        report.durations_ms.total,
    );
    match report.failure_reason {
        Some(reason) => Err(aether_sdk::Error::Usage { message: format!("the release did not start: {reason}") }),
        None => Ok(()),
    }
}
