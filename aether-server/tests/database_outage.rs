#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real server on a real PostgreSQL that the test stops (`pg_ctl stop -m fast`) and starts
//! again on the same port and data while requests keep coming: meanwhile every answer is a
//! success or a 503 `service_unavailable` with `Retry-After`, never another error or a dropped
//! connection, and afterwards the same server process answers 200 again.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aether_server::testing::postgres::TestPostgres;
use aether_server::testing::process::ServerProcess;
use serde_json::json;
use tokio::sync::Notify;

const TOKEN: &str = "outage-admin";
/// Every wait ends within this, so a hang is a failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// One answer the load got: status, `Retry-After` and envelope code, or why there was none.
#[derive(Debug, Clone)]
enum Outcome {
    Answer { status: u16, retry_after: Option<String>, code: Option<String> },
    NoAnswer(String),
}

/// What the load saw, in order, with a wake-up for each new outcome.
#[derive(Default)]
struct Seen {
    outcomes: Mutex<Vec<Outcome>>,
    changed: Notify,
    stop: std::sync::atomic::AtomicBool,
}

impl Seen {
    fn push(&self, outcome: Outcome) {
        self.outcomes.lock().unwrap_or_else(PoisonError::into_inner).push(outcome);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until an outcome after the first `from` satisfies `check`; returns its index.
    async fn until(&self, from: usize, what: &str, check: impl Fn(&Outcome) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            if let Some(found) = self.snapshot().iter().skip(from).position(&check) {
                return from + found;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("never saw {what}; the load saw {:?}", self.snapshot());
            }
        }
    }
}

fn status_is(wanted: u16) -> impl Fn(&Outcome) -> bool {
    move |outcome| matches!(outcome, Outcome::Answer { status, .. } if *status == wanted)
}

/// Reads and writes in a loop until told to stop: lists apps and creates new ones.
async fn load(http: reqwest::Client, base: String, seen: Arc<Seen>, worker: usize) {
    let mut n = 0;
    while !seen.stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let request = if n % 2 == 0 {
            http.get(format!("{base}/apps"))
        } else {
            http.post(format!("{base}/apps")).json(&json!({ "name": format!("app-{worker}-{n}") }))
        };
        let outcome = match request.bearer_auth(TOKEN).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                Outcome::Answer { status, retry_after, code: body["code"].as_str().map(str::to_owned) }
            }
            Err(error) => Outcome::NoAnswer(format!("{error:?}")),
        };
        seen.push(outcome);
        // Paced, so the outage is sampled rather than flooded (a 503 comes back at once).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_again_answers_503_with_retry_after_then_200() {
    let pg = Arc::new(TestPostgres::start().expect("PostgreSQL for this test"));
    let database = pg.create_database("aether_outage").unwrap();
    let data = tempfile::tempdir().unwrap();
    let vars = [
        ("DATABASE_URL", database.as_str()),
        ("AETHER_DATA_DIR", &data.path().display().to_string()),
        ("AETHER_API_TOKENS", &format!("{TOKEN}:admin")),
        ("AETHER_RUNTIME", "none"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    let server = ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_aether-server")), &vars);
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().unwrap();
    let seen = Arc::new(Seen::default());
    let workers: Vec<_> =
        (0..2).map(|w| tokio::spawn(load(http.clone(), server.url.clone(), Arc::clone(&seen), w))).collect();

    let serving = seen.until(0, "a first success", status_is(200)).await;
    let stopping = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap().unwrap();
    let stopped_at = seen.snapshot().len();
    // Several, so that reads and writes (the workers alternate) both meet the outage.
    let mut unavailable_at = stopped_at;
    for _ in 0..6 {
        unavailable_at = seen.until(unavailable_at, "503s while PostgreSQL is down", status_is(503)).await + 1;
    }
    let resumed = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || resumed.resume()).await.unwrap().unwrap();
    let resumed_at = seen.snapshot().len();
    let started = Instant::now();
    let recovered = seen.until(resumed_at, "a GET answered 200 after PostgreSQL came back", status_is(200)).await;
    seen.until(recovered, "an app created after PostgreSQL came back", status_is(201)).await;
    let unavailable = seen.snapshot()[stopped_at..resumed_at].iter().filter(|o| status_is(503)(o)).count();
    println!(
        "{unavailable} answers 503 during the outage; served again {} ms after PostgreSQL accepted connections",
        started.elapsed().as_millis()
    );

    seen.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let outcomes = seen.snapshot();
    assert!(serving < stopped_at, "the load was served before the outage");
    for outcome in &outcomes {
        match outcome {
            Outcome::Answer { status: 200 | 201, .. } => {}
            Outcome::Answer { status: 503, retry_after, code } => {
                assert_eq!(code.as_deref(), Some("service_unavailable"), "{outcome:?}");
                let secs: u64 = retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
                assert!((1..=5).contains(&secs), "{outcome:?}");
            }
            Outcome::NoAnswer(error) => panic!("a request got no answer: {error}\n{}", server.log()),
            other => panic!("neither a success nor a 503 with Retry-After: {other:?}\n{}", server.log()),
        }
    }
    let ready = http.get(format!("{}/readyz", server.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready again without a restart");
}
