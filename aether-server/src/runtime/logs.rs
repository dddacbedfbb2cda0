//! The log lines of every app, kept in memory: a bounded ring per app plus a broadcast channel
//! for followers.
//!
//! Lines are not written to disk, so a server restart forgets them; a release's output is only
//! as durable as the process that reads it. The bound is per app and spans its releases, so a
//! chatty old release cannot push a new one's start-up lines out of another app's history.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt as _;
use tokio::sync::broadcast;

use futures_util::stream::BoxStream;

use crate::ports::{LogLine, LogQuery};

/// Lines a follower may fall behind by before it skips ahead.
const FOLLOW_BUFFER: usize = 1024;

#[derive(Debug)]
pub struct LogBook {
    capacity: usize,
    apps: Mutex<HashMap<String, AppLog>>,
}

#[derive(Debug)]
struct AppLog {
    lines: VecDeque<LogLine>,
    live: broadcast::Sender<LogLine>,
}

impl AppLog {
    fn new() -> Self {
        Self { lines: VecDeque::new(), live: broadcast::channel(FOLLOW_BUFFER).0 }
    }

    fn tail(&self, query: &LogQuery) -> Vec<LogLine> {
        let mut newest: Vec<LogLine> =
            self.lines.iter().rev().filter(|line| query.matches(line)).take(query.tail).cloned().collect();
        newest.reverse();
        newest
    }
}

impl LogBook {
    /// Keeps at most `capacity` lines per app, dropping the oldest.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), apps: Mutex::new(HashMap::new()) }
    }

    /// A panic elsewhere while holding the lock leaves the lines intact, so they stay usable.
    fn apps(&self) -> MutexGuard<'_, HashMap<String, AppLog>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, app_name: &str, line: LogLine) {
        let mut apps = self.apps();
        let log = apps.entry(app_name.to_owned()).or_insert_with(AppLog::new);
        // No followers is the usual case, not an error.
        let _ = log.live.send(line.clone());
        log.lines.push_back(line);
        while log.lines.len() > self.capacity {
            log.lines.pop_front();
        }
    }

    /// Whether the app has any line on record.
    pub fn has_lines(&self, app_name: &str) -> bool {
        self.apps().get(app_name).is_some_and(|log| !log.lines.is_empty())
    }

    /// The newest lines matching `query`, oldest first.
    pub fn lines(&self, app_name: &str, query: &LogQuery) -> Vec<LogLine> {
        self.apps().get(app_name).map(|log| log.tail(query)).unwrap_or_default()
    }

    /// [`LogBook::lines`], rendered.
    pub fn query(&self, app_name: &str, query: &LogQuery) -> Vec<String> {
        self.lines(app_name, query).iter().map(LogLine::render).collect()
    }

    /// The tail and the subscription are taken under one lock, so the follower sees every line
    /// exactly once. A follower that falls more than a buffer behind skips the lines it missed
    /// rather than slowing the releases down.
    pub fn follow(&self, app_name: &str, query: &LogQuery) -> BoxStream<'static, LogLine> {
        let (backlog, receiver) = {
            let mut apps = self.apps();
            let log = apps.entry(app_name.to_owned()).or_insert_with(AppLog::new);
            let backlog: Vec<LogLine> = log.tail(query);
            (backlog, log.live.subscribe())
        };
        let query = query.clone();
        let live = futures_util::stream::unfold(receiver, move |mut receiver| {
            let query = query.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(line) if query.matches(&line) => return Some((line, receiver)),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        futures_util::stream::iter(backlog).chain(live).boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ports::LogStream;

    fn line(at_ms: i64, deployment_id: &str, text: &str) -> LogLine {
        LogLine { at_ms, deployment_id: deployment_id.to_owned(), stream: LogStream::Stdout, text: text.to_owned() }
    }

    fn texts(lines: &[String]) -> Vec<&str> {
        lines.iter().map(|l| l.rsplit(": ").next().unwrap()).collect()
    }

    #[test]
    fn keeps_the_newest_lines_per_app_and_filters() {
        let book = LogBook::new(3);
        for (at, id, text) in
            [(1, "aaaaaaaa-1", "a"), (2, "bbbbbbbb-2", "b"), (3, "aaaaaaaa-1", "c"), (4, "bbbbbbbb-2", "d")]
        {
            book.push("web", line(at, id, text));
        }
        book.push("api", line(5, "cccccccc-3", "other app"));
        let all = LogQuery { tail: 10, ..LogQuery::default() };
        assert_eq!(texts(&book.query("web", &all)), ["b", "c", "d"]);
        assert_eq!(texts(&book.query("web", &LogQuery { tail: 2, ..all.clone() })), ["c", "d"]);
        assert_eq!(texts(&book.query("web", &LogQuery { since_ms: Some(3), ..all.clone() })), ["c", "d"]);
        let only_b = LogQuery { deployment_id: Some("bbbbbbbb-2".into()), ..all.clone() };
        assert_eq!(texts(&book.query("web", &only_b)), ["b", "d"]);
        assert!(book.query("nope", &all).is_empty());
        assert_eq!(book.query("web", &LogQuery { tail: 1, ..all })[0], "1970-01-01T00:00:00.004Z bbbbbbbb stdout: d");
    }

    #[tokio::test]
    async fn follow_sends_the_tail_then_new_matching_lines() {
        let book = LogBook::new(10);
        book.push("web", line(1, "one", "before"));
        let query = LogQuery { tail: 5, deployment_id: Some("two".into()), ..LogQuery::default() };
        let mut follow = book.follow("web", &query);
        book.push("web", line(2, "one", "not this deployment"));
        book.push("web", line(3, "two", "after"));
        assert_eq!(texts(&[follow.next().await.unwrap().render()]), ["after"]);
        let mut everything = book.follow("web", &LogQuery { tail: 1, ..LogQuery::default() });
        assert_eq!(texts(&[everything.next().await.unwrap().render()]), ["after"]);
    }
}
