//! Prometheus metrics in the text exposition format, kept in memory.
//!
//! Labels only ever hold route templates (`/artifacts/{digest}`), methods, statuses and
//! results, never ids or digests, so the series count stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::{AppState, Ports};

mod artifacts;

/// Bucket upper bounds in seconds, from fast API calls to large uploads.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    http_requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    http_latency: Mutex<BTreeMap<(String, String), Histogram>>,
    uploads: Mutex<BTreeMap<&'static str, u64>>,
    upload_latency: Mutex<Histogram>,
    upload_bytes: AtomicU64,
    uploads_in_progress: AtomicI64,
    artifacts: artifacts::ArtifactMetrics,
}

impl Metrics {
    /// Counts an upload by result: `stored`, `duplicate`, `digest_mismatch`, `too_large`, `failed`.
    pub fn upload_finished(&self, result: &'static str, bytes: u64, elapsed: Duration) {
        if let Ok(mut uploads) = self.uploads.lock() {
            *uploads.entry(result).or_default() += 1;
        }
        if let Ok(mut latency) = self.upload_latency.lock() {
            latency.observe(elapsed.as_secs_f64());
        }
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn upload_started(&self) -> UploadGauge<'_> {
        self.uploads_in_progress.fetch_add(1, Ordering::Relaxed);
        UploadGauge(self)
    }

    fn http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.http_requests.lock() {
            *requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut latency) = self.http_latency.lock() {
            latency.entry((method.to_owned(), route.to_owned())).or_default().observe(elapsed.as_secs_f64());
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP artifact_uploads_total Artifact uploads by result.\n# TYPE artifact_uploads_total counter\n",
        );
        if let Ok(uploads) = self.uploads.lock() {
            for (result, count) in uploads.iter() {
                let _ = writeln!(out, "artifact_uploads_total{{result=\"{result}\"}} {count}");
            }
        }
        out.push_str("# HELP artifact_upload_bytes_total Bytes received in artifact uploads.\n# TYPE artifact_upload_bytes_total counter\n");
        let _ = writeln!(out, "artifact_upload_bytes_total {}", self.upload_bytes.load(Ordering::Relaxed));
        out.push_str("# HELP artifact_uploads_in_progress Uploads being received now.\n# TYPE artifact_uploads_in_progress gauge\n");
        let _ = writeln!(out, "artifact_uploads_in_progress {}", self.uploads_in_progress.load(Ordering::Relaxed));
        out.push_str("# HELP artifact_upload_duration_seconds Time to receive and verify an upload.\n# TYPE artifact_upload_duration_seconds histogram\n");
        if let Ok(latency) = self.upload_latency.lock() {
            latency.render(&mut out, "artifact_upload_duration_seconds", "");
        }
        self.artifacts.render(&mut out);
        out.push_str("# HELP http_requests_total HTTP requests by method, route and status.\n# TYPE http_requests_total counter\n");
        if let Ok(requests) = self.http_requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP http_request_duration_seconds HTTP request latency by method and route.\n# TYPE http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.http_latency.lock() {
            for ((method, route), histogram) in latency.iter() {
                histogram.render(
                    &mut out,
                    "http_request_duration_seconds",
                    &format!("method=\"{method}\",route=\"{route}\""),
                );
            }
        }
        out
    }
}

/// Decrements the in-progress gauge when the upload ends, however it ends.
#[derive(Debug)]
pub struct UploadGauge<'a>(&'a Metrics);

impl Drop for UploadGauge<'_> {
    fn drop(&mut self) {
        self.0.uploads_in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware recording every request under its route template, never its concrete path.
pub async fn track<P: Ports>(State(state): State<AppState<P>>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.http(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::default();
        {
            let _gauge = m.upload_started();
            assert!(m.render().contains("artifact_uploads_in_progress 1"));
        }
        m.upload_finished("stored", 100, Duration::from_millis(30));
        m.http("GET", "/artifacts/{digest}", 404, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("artifact_uploads_in_progress 0"));
        assert!(text.contains("artifact_uploads_total{result=\"stored\"} 1"));
        assert!(text.contains("artifact_upload_bytes_total 100"));
        assert!(text.contains("artifact_upload_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/artifacts/{digest}\",status=\"404\"} 1"));
        assert!(text.contains("http_request_duration_seconds_count{method=\"GET\",route=\"/artifacts/{digest}\"} 1"));
    }
}
