//! `aether list` and `aether status`: aligned tables for people, stable JSON for programs.

use aether_core::api::DeploymentResponse;
use aether_sdk::status::AppSummary;
use serde_json::json;

use super::time::{ago_from, now_ms};
use crate::args::OutputFormat;

pub fn app_list(format: OutputFormat, rows: &[AppSummary]) {
    match format {
        OutputFormat::Json => {
            let apps: Vec<_> = rows
                .iter()
                .map(|r| json!({ "name": r.app.name, "created_at": r.app.created_at, "deployment": r.deployment }))
                .collect();
            println!("{}", json!({ "apps": apps }));
        }
        OutputFormat::Text if rows.is_empty() => println!("No apps yet. Deploy one with `aether deploy`."),
        OutputFormat::Text => {
            let now = now_ms();
            let mut table = vec![["APP", "STATUS", "DEPLOYMENT", "DIGEST", "URL", "AGE"].map(str::to_owned).to_vec()];
            for row in rows {
                let cells = match &row.deployment {
                    Some(d) => vec![
                        row.app.name.clone(),
                        d.status.as_str().to_owned(),
                        short(&d.id, 8),
                        short(&d.digest, 12),
                        d.url.clone().unwrap_or_else(|| "-".into()),
                        ago_from(&d.created_at, now),
                    ],
                    None => vec![row.app.name.clone(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
                };
                table.push(cells);
            }
            print!("{}", aligned(&table));
        }
    }
}

/// The app's running deployment and, when different, its newest one (with its events).
pub fn app_status(
    format: OutputFormat,
    app: &str,
    running: Option<&DeploymentResponse>,
    latest: Option<&DeploymentResponse>,
) {
    match format {
        OutputFormat::Json => println!("{}", json!({ "app": app, "running": running, "latest": latest })),
        OutputFormat::Text => {
            let now = now_ms();
            let mut out = format!("App {app}\n");
            match running {
                Some(d) => out.push_str(&describe("Running", d, now)),
                None => out.push_str("  Running    nothing\n"),
            }
            if let Some(latest) = latest.filter(|l| running.is_none_or(|r| r.id != l.id)) {
                out.push_str(&describe("Latest", latest, now));
            }
            if let Some(events) = latest.and_then(|l| l.events.as_ref()).filter(|e| !e.is_empty()) {
                out.push_str("  Events of the latest deployment:\n");
                for event in events {
                    let reason = event.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default();
                    out.push_str(&format!("    {:<15} {}{reason}\n", event.to.as_str(), ago_from(&event.at, now)));
                }
            }
            print!("{out}");
        }
    }
}

fn describe(label: &str, d: &DeploymentResponse, now: i64) -> String {
    let mut out = format!("  {label:<10} {} ({}, created {})\n", d.id, d.status.as_str(), ago_from(&d.created_at, now));
    out.push_str(&format!("  {:<10} sha256:{}\n", "", d.digest));
    if let Some(url) = &d.url {
        out.push_str(&format!("  {:<10} {url}\n", ""));
    }
    if let Some(reason) = &d.failure_reason {
        out.push_str(&format!("  {:<10} failed: {reason}\n", ""));
    }
    out
}

pub fn short(text: &str, len: usize) -> String {
    text.chars().take(len).collect()
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::aligned;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["APP".to_owned(), "STATUS".to_owned(), "AGE".to_owned()],
            vec!["sample-node".to_owned(), "running".to_owned(), "2 minutes ago".to_owned()],
        ];
        assert_eq!(aligned(&rows), "APP          STATUS   AGE\nsample-node  running  2 minutes ago\n");
    }
}
