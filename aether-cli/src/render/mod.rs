//! What the user sees: text or one JSON object on stdout, progress on a terminal's stderr.

mod apps;
mod build;
mod deploy;
mod time;

pub use time::now_ms;

pub use apps::{app_list, app_status};
pub use build::build_report;
pub use deploy::{DeployProgress, deploy_report, rollback_report};

use std::io::IsTerminal as _;
use std::time::Duration;

use aether_sdk::build::{BuildEvent, Phase};
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
                // Files are packed as the walk finds them, so there is no total to show a bar
                // against: a spinner with running counts instead.
                let style = ProgressStyle::with_template("{spinner} Packing {msg} {bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let bar = ProgressBar::new_spinner().with_style(style);
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bar = Some(bar);
            }
            BuildEvent::PackProgress { files_done, bytes_done } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*bytes_done);
                    bar.set_message(format!("{files_done} files,"));
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
        OutputFormat::Json => {
            let mut body = json!({ "code": error.code, "message": error.message });
            if let (Some(serde_json::Value::Object(details)), Some(object)) = (&error.details, body.as_object_mut()) {
                object.extend(details.clone());
            }
            println!("{}", json!({ "error": body }));
        }
        OutputFormat::Text => eprintln!("error: {}", error.message),
    }
}
