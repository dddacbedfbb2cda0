//! The report of a local build (`--pack-only`, `--dry-run`).

use std::path::Path;

use aether_core::manifest::ManifestEntry;
use aether_sdk::build::BuildReport;
use serde_json::json;

use super::bytes;
use crate::args::OutputFormat;

pub(super) fn path_json(path: Option<&Path>) -> serde_json::Value {
    path.map_or(serde_json::Value::Null, |p| json!(p.display().to_string()))
}

pub fn build_report(format: OutputFormat, report: &BuildReport, namespace: Option<&str>) {
    match format {
        OutputFormat::Json => {
            let value = build_json(report, namespace);
            println!("{value}");
        }
        OutputFormat::Text => print!("{}", text_report(report)),
    }
}

pub(super) fn text_report(report: &BuildReport) -> String {
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
    for entry in report.entries.iter().flatten() {
        match entry {
            ManifestEntry::File { path, size, .. } => out.push_str(&format!("  {:>10}  {path}\n", bytes(*size))),
            ManifestEntry::Symlink { path, target } => out.push_str(&format!("  {:>10}  {path} -> {target}\n", "link")),
            ManifestEntry::Dir { .. } => {}
        }
    }
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

/// The build's fields of the JSON report, which the deploy report extends.
pub(super) fn build_json(report: &BuildReport, namespace: Option<&str>) -> serde_json::Value {
    let mut value = json!({
        "dry_run": report.dry_run,
        "artifact": path_json(report.artifact.as_deref()),
        "digest": report.digest,
        "size_bytes": report.size_bytes,
        "tar_sha256": report.tar_sha256,
        "file_count": report.file_count,
        "total_file_bytes": report.total_file_bytes,
        "manifest": path_json(report.manifest.as_deref()),
        "blocks": path_json(report.blocks.as_deref()),
        "block_count": report.block_count,
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
    if let Some(entries) = &report.entries {
        value["entries"] = json!(entries);
    }
    value
}
