//! What the user sees: text or one JSON object on stdout, progress on a terminal's stderr.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use aether_sdk::build::{BuildEvent, BuildReport, Phase};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::OutputFormat;
use crate::exit::CliError;

/// Spinner for install, byte bar for pack; nothing at all when stderr is not a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Progress {
    pub fn new() -> Self {
        Self { bar: None, enabled: std::io::stderr().is_terminal() }
    }

    pub fn handle(&mut self, event: &BuildEvent) {
        if !self.enabled {
            return;
        }
        match event {
            BuildEvent::PhaseStarted { phase: Phase::Install, detail } => {
                let bar = ProgressBar::new_spinner().with_message(format!("Installing dependencies ({detail})"));
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bar = Some(bar);
            }
            BuildEvent::PhaseStarted { phase: Phase::Pack, .. } => {
                let style = ProgressStyle::with_template("Packing {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                self.bar = Some(ProgressBar::new(0).with_style(style));
            }
            BuildEvent::PackProgress { bytes_done, bytes_total } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*bytes_total);
                    bar.set_position(*bytes_done);
                }
            }
            BuildEvent::PhaseFinished { .. } => self.finish(),
            BuildEvent::PhaseStarted { .. } => {}
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn path_json(path: Option<&Path>) -> serde_json::Value {
    path.map_or(serde_json::Value::Null, |p| json!(p.display().to_string()))
}

pub fn build_report(format: OutputFormat, report: &BuildReport, namespace: Option<&str>) {
    match format {
        OutputFormat::Json => {
            let value = json!({
                "dry_run": report.dry_run,
                "artifact": path_json(report.artifact.as_deref()),
                "digest": report.digest,
                "size_bytes": report.size_bytes,
                "tar_sha256": report.tar_sha256,
                "file_count": report.file_count,
                "total_file_bytes": report.total_file_bytes,
                "manifest": path_json(report.manifest.as_deref()),
                "sbom": path_json(report.sbom.as_deref()),
                "signature": path_json(report.signature.as_deref()),
                "public_key": report.public_key,
                "provenance": path_json(report.provenance.as_deref()),
                "note": report.note,
                "warnings": report.warnings,
                "project": report.project,
                "namespace": namespace,
                "install": report.install,
                "durations_ms": report.durations_ms,
            });
            println!("{value}");
        }
        OutputFormat::Text => print!("{}", text_report(report)),
    }
}

fn text_report(report: &BuildReport) -> String {
    let p = &report.project;
    let mut out = if report.dry_run {
        format!(
            "Would pack {}@{} ({} files, {})\n",
            p.name,
            p.version,
            report.file_count,
            bytes(report.total_file_bytes)
        )
    } else {
        let artifact = report.artifact.as_deref().map(|a| a.display().to_string()).unwrap_or_default();
        format!("Packed {}@{} -> {artifact}\n", p.name, p.version)
    };
    let mut row = |label: &str, value: String| out.push_str(&format!("  {label:<11}{value}\n"));
    row("digest", format!("sha256:{}", report.digest));
    row(
        "size",
        format!(
            "{} ({} files, {} unpacked)",
            bytes(report.size_bytes),
            report.file_count,
            bytes(report.total_file_bytes)
        ),
    );
    if let Some(install) = &report.install {
        row("install", format!("{}{}", install.command, if install.cached { " (cached)" } else { "" }));
    }
    for (label, path) in [
        ("manifest", &report.manifest),
        ("sbom", &report.sbom),
        ("provenance", &report.provenance),
        ("signature", &report.signature),
    ] {
        if let Some(path) = path {
            row(label, path.display().to_string());
        }
    }
    if let Some(key) = &report.public_key {
        row("public key", key.clone());
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// Sizes the way people read them: 1.2 MB, 340 kB, 12 B.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub fn error(format: OutputFormat, error: &CliError) {
    match format {
        OutputFormat::Json => println!("{}", json!({ "error": { "code": error.code, "message": error.message } })),
        OutputFormat::Text => eprintln!("error: {}", error.message),
    }
}
