//! The artifact store's counters and histograms, the same for every adapter. No per-app or
//! per-digest labels: every series exists once.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Histogram, Metrics};

/// Counter names and help texts, in the order they are rendered.
const COUNTERS: [(&str, &str); 11] = [
    ("artifact_presign_requests_total", "Presigned upload URLs (whole objects and parts) handed out."),
    ("artifact_presign_failures_total", "Presign requests the artifact store failed."),
    ("artifact_complete_requests_total", "Upload completions requested."),
    ("artifact_complete_failures_total", "Upload completions that did not register an artifact."),
    ("artifact_digest_mismatch_total", "Uploads whose bytes did not match the declared size or SHA-256."),
    ("artifact_size_exceeded_total", "Uploads refused for exceeding AETHER_MAX_ARTIFACT_SIZE_BYTES."),
    ("artifact_pending_gc_runs_total", "Runs of the pending-upload garbage collector."),
    ("artifact_pending_gc_deleted_total", "Expired uploads and orphaned staging areas the collector removed."),
    ("artifact_multipart_started_total", "Multipart uploads started."),
    ("artifact_multipart_completed_total", "Multipart uploads assembled and registered."),
    ("artifact_multipart_parts_presigned_total", "Presigned multipart part URLs handed out."),
];

#[derive(Debug, Default)]
pub(super) struct ArtifactMetrics {
    counters: [AtomicU64; COUNTERS.len()],
    put_latency: Mutex<Histogram>,
    complete_latency: Mutex<Histogram>,
}

impl ArtifactMetrics {
    fn add(&self, name: &str, n: u64) {
        if let Some(index) = COUNTERS.iter().position(|(counter, _)| *counter == name) {
            self.counters[index].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn render(&self, out: &mut String) {
        for ((name, help), value) in COUNTERS.iter().zip(&self.counters) {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        for (name, help, histogram) in [
            (
                "artifact_put_duration_seconds",
                "Time to receive an upload's bytes through the server.",
                &self.put_latency,
            ),
            (
                "artifact_complete_duration_seconds",
                "Time to verify, publish and register an upload.",
                &self.complete_latency,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            if let Ok(histogram) = histogram.lock() {
                histogram.render(out, name, "");
            }
        }
    }
}

impl Metrics {
    /// A presigned URL was requested; `ok` when the store produced it.
    pub fn presigned(&self, ok: bool) {
        let name = if ok { "artifact_presign_requests_total" } else { "artifact_presign_failures_total" };
        self.artifacts.add(name, 1);
    }

    pub fn part_presigned(&self) {
        self.artifacts.add("artifact_multipart_parts_presigned_total", 1);
    }

    pub fn completed(&self, ok: bool, elapsed: Duration) {
        self.artifacts.add("artifact_complete_requests_total", 1);
        if !ok {
            self.artifacts.add("artifact_complete_failures_total", 1);
        }
        if let Ok(mut latency) = self.artifacts.complete_latency.lock() {
            latency.observe(elapsed.as_secs_f64());
        }
    }

    pub fn put_received(&self, elapsed: Duration) {
        if let Ok(mut latency) = self.artifacts.put_latency.lock() {
            latency.observe(elapsed.as_secs_f64());
        }
    }

    pub fn digest_mismatch(&self) {
        self.artifacts.add("artifact_digest_mismatch_total", 1);
    }

    pub fn size_exceeded(&self) {
        self.artifacts.add("artifact_size_exceeded_total", 1);
    }

    pub fn multipart_started(&self) {
        self.artifacts.add("artifact_multipart_started_total", 1);
    }

    pub fn multipart_completed(&self) {
        self.artifacts.add("artifact_multipart_completed_total", 1);
    }

    pub fn gc_ran(&self, deleted: u64) {
        self.artifacts.add("artifact_pending_gc_runs_total", 1);
        self.artifacts.add("artifact_pending_gc_deleted_total", deleted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_renders_and_counts() {
        let m = Metrics::default();
        m.presigned(true);
        m.presigned(false);
        m.completed(false, Duration::from_millis(3));
        m.digest_mismatch();
        m.gc_ran(4);
        let text = m.render();
        for (name, _) in COUNTERS {
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name} missing");
        }
        for line in [
            "artifact_presign_requests_total 1",
            "artifact_presign_failures_total 1",
            "artifact_complete_requests_total 1",
            "artifact_complete_failures_total 1",
            "artifact_digest_mismatch_total 1",
            "artifact_pending_gc_runs_total 1",
            "artifact_pending_gc_deleted_total 4",
            "artifact_complete_duration_seconds_count 1",
            "artifact_put_duration_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
