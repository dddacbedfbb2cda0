//! `aether logs --app NAME [--follow] [--since D] [--tail N]`.

use aether_sdk::client::LogsQuery;
use aether_sdk::connect::Overrides;
use serde_json::json;

use super::connection::{app_name, block_on, client};
use crate::args::{LogsArgs, OutputFormat};
use crate::exit::CliError;

pub fn run(args: &LogsArgs, insecure: bool, format: OutputFormat) -> Result<(), CliError> {
    let app = app_name(&args.app)?;
    let client = client(&Overrides { insecure, ..Overrides::default() })?;
    let since_ms = args.since.map(|since| {
        let since = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
        crate::render::now_ms().saturating_sub(since)
    });
    let query = LogsQuery { tail: Some(usize::from(args.tail)), since_ms, deployment: None };
    block_on(async {
        if !args.follow {
            let lines = client.app_logs(&app, &query).await?;
            match format {
                OutputFormat::Json => println!("{}", json!({ "app": app, "lines": lines })),
                OutputFormat::Text => lines.iter().for_each(|line| println!("{line}")),
            }
            return Ok(());
        }
        // Following prints as lines arrive: plain lines, or one JSON object per line.
        let mut stream = client.follow_logs(&app, &query).await?;
        while let Some(line) = stream.next_line().await? {
            match format {
                OutputFormat::Json => println!("{}", json!({ "line": line })),
                OutputFormat::Text => println!("{line}"),
            }
        }
        Ok(())
    })
}
