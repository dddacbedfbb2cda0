//! `aether deploy` and `aether rollback` results, and the progress shown while they run.

use std::io::IsTerminal as _;
use std::time::Duration;

use aether_core::api::DeploymentResponse;
use aether_sdk::deploy::{DeployEvent, DeployReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::build::build_json;
use super::{Progress, bytes};
use crate::args::OutputFormat;

/// Build progress, then an upload bar and a rollout spinner; nothing when stderr is piped.
pub struct DeployProgress {
    build: Progress,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl DeployProgress {
    pub fn new() -> Self {
        Self { build: Progress::new(), bar: None, enabled: std::io::stderr().is_terminal() }
    }

    pub fn handle(&mut self, event: &DeployEvent) {
        if !self.enabled {
            return;
        }
        match event {
            DeployEvent::Build(event) => self.build.handle(event),
            DeployEvent::UploadStarted { bytes_total } => {
                self.build.finish();
                let style = ProgressStyle::with_template("Uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                self.replace(ProgressBar::new(*bytes_total).with_style(style));
            }
            DeployEvent::Upload(progress) => {
                if let Some(bar) = &self.bar {
                    bar.set_position(progress.bytes_done);
                }
            }
            DeployEvent::UploadSkipped => self.finish(),
            DeployEvent::DeploymentCreated { id } => {
                let spinner = ProgressBar::new_spinner().with_message(format!("Rolling out {id}"));
                spinner.enable_steady_tick(Duration::from_millis(100));
                self.replace(spinner);
            }
            DeployEvent::Status(status) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("Rolling out: {}", status.as_str()));
                }
            }
            DeployEvent::Progress(step) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("Rolling out: {step}"));
                }
            }
        }
    }

    fn replace(&mut self, bar: ProgressBar) {
        self.finish();
        self.bar = Some(bar);
    }

    pub fn finish(&mut self) {
        self.build.finish();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

pub fn deploy_report(format: OutputFormat, report: &DeployReport, namespace: Option<&str>) {
    match format {
        OutputFormat::Json => {
            let mut value = build_json(&report.build, namespace);
            if let Some(object) = value.as_object_mut() {
                let extra = json!({
                    "app": report.app,
                    "app_created": report.app_created,
                    "deployment_id": report.deployment_id,
                    "status": report.status,
                    "url": report.url,
                    "failure_reason": report.failure_reason,
                    "uploaded_bytes": report.uploaded_bytes,
                    "unchanged": report.unchanged,
                    "timed_out": report.timed_out,
                    "duration_ms": report.durations_ms.total,
                    "phase_durations_ms": report.durations_ms,
                });
                if let serde_json::Value::Object(extra) = extra {
                    object.extend(extra);
                }
            }
            println!("{value}");
        }
        OutputFormat::Text => {
            let seconds = report.durations_ms.total as f64 / 1000.0;
            let mut out = if report.unchanged {
                format!("{} already runs this artifact; nothing to roll out ({seconds:.1}s)\n", report.app)
            } else {
                format!("Deployed {} in {seconds:.1}s\n", report.app)
            };
            let mut row = |label: &str, value: String| out.push_str(&format!("  {label:<11}{value}\n"));
            row("deployment", report.deployment_id.clone());
            row("status", report.status.as_str().to_owned());
            if let Some(url) = &report.url {
                row("url", url.clone());
            }
            row("digest", format!("sha256:{}", report.build.digest));
            let uploaded = if report.uploaded_bytes == 0 {
                "0 B (already stored)".to_owned()
            } else {
                bytes(report.uploaded_bytes)
            };
            row("uploaded", uploaded);
            if report.timed_out {
                out.push_str("The rollout is still in progress; follow it with `aether status`.\n");
            }
            for warning in &report.build.warnings {
                out.push_str(&format!("warning: {warning}\n"));
            }
            print!("{out}");
        }
    }
}

pub fn rollback_report(format: OutputFormat, deployment: &DeploymentResponse, timed_out: bool) {
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                json!({ "deployment_id": deployment.id, "status": deployment.status, "url": deployment.url, "digest": deployment.digest, "timed_out": timed_out })
            );
        }
        OutputFormat::Text => {
            let mut out = format!("Rolled {} back to sha256:{}\n", deployment.app_name, deployment.digest);
            out.push_str(&format!(
                "  {:<11}{}\n  {:<11}{}\n",
                "deployment",
                deployment.id,
                "status",
                deployment.status.as_str()
            ));
            if let Some(url) = &deployment.url {
                out.push_str(&format!("  {:<11}{url}\n", "url"));
            }
            if timed_out {
                out.push_str("The rollout is still in progress; follow it with `aether status`.\n");
            }
            print!("{out}");
        }
    }
}
