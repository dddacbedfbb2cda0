//! App logs: the query the logs endpoint takes, and the server-sent-events stream a followed
//! log arrives as.

use reqwest::Response;

use crate::error::Error;

/// Which log lines to return. `None` fields leave the choice to the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    /// At most this many of the most recent lines.
    pub tail: Option<usize>,
    /// Only lines written at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only the lines of this deployment (e.g. the one that just failed).
    pub deployment: Option<String>,
}

/// A followed log: each `data:` field of the server's event stream is one log line; an event
/// of type `error` says why the server's log source broke, and ends the stream.
#[derive(Debug)]
pub struct LogStream {
    response: Response,
    url: String,
    /// Bytes received but not yet split into complete lines.
    pending: Vec<u8>,
    /// Data lines of the event being read.
    event: Vec<String>,
    /// The `event:` field of the event being read (`message` when absent).
    event_type: Option<String>,
}

impl LogStream {
    pub(crate) fn new(response: Response, url: String) -> Self {
        Self { response, url, pending: Vec::new(), event: Vec::new(), event_type: None }
    }

    /// The next log line; `None` once the server ends the stream, an error once it reports
    /// that its log source broke.
    pub async fn next_line(&mut self) -> Result<Option<String>, Error> {
        loop {
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\r']).to_owned();
                if let Some(data) = sse_field(&line, "data") {
                    self.event.push(data.to_owned());
                } else if let Some(kind) = sse_field(&line, "event") {
                    self.event_type = Some(kind.to_owned());
                } else if line.is_empty() && !self.event.is_empty() {
                    let data = std::mem::take(&mut self.event).join("\n");
                    if self.event_type.take().as_deref() == Some("error") {
                        return Err(Error::StreamBroken { url: self.url.clone(), message: data });
                    }
                    return Ok(Some(data));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.pending.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(source) => return Err(Error::Http { url: self.url.clone(), source: source.without_url() }),
            }
        }
    }
}

/// The value of the SSE field `name` on this line (one optional space after the colon is not
/// part of it); `None` for comments (keep-alives), other fields and blank lines.
fn sse_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?;
    if value.is_empty() {
        return Some("");
    }
    let value = value.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::sse_field;

    fn sse_data(line: &str) -> Option<&str> {
        sse_field(line, "data")
    }

    #[test]
    fn data_fields_are_recognised_per_the_sse_rules() {
        assert_eq!(sse_data("data: hello"), Some("hello"));
        assert_eq!(sse_data("data:hello"), Some("hello"));
        assert_eq!(sse_data("data:  two spaces"), Some(" two spaces"));
        assert_eq!(sse_data("data"), Some(""));
        assert_eq!(sse_data(": keep-alive"), None);
        assert_eq!(sse_data("event: log"), None);
        assert_eq!(sse_data("database: no"), None);
        assert_eq!(sse_data(""), None);
        assert_eq!(sse_field("event: error", "event"), Some("error"));
    }
}
