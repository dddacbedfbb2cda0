//! The stream benchmark's results: every sample, their summaries, and the two targets the
//! product promises (throughput against `curl -T`, client memory independent of size).

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::host;
use crate::stats::{Percentiles, percentiles};
use crate::upload::UploadOnce;

pub const SCHEMA: &str = "aether-stream-bench-v1";
/// Aether's upload rate must be at least this fraction of `curl -T`'s.
pub const TARGET_MIN_RATIO: f64 = 0.8;
/// Largest allowed difference between the peak RSS of the smallest and the largest upload:
/// memory independent of size means flat, with room for allocator and runtime noise but less
/// than one 16 MiB part, so buffering a part, let alone the file, fails it.
pub const TARGET_MAX_RSS_SPREAD_MIB: f64 = 16.0;
const MB: f64 = 1e6;
const MIB: u64 = 1024 * 1024;

/// What was measured at one size, before it is summarised.
#[derive(Debug)]
pub struct SizeSamples {
    pub size_bytes: u64,
    pub curl_s: Vec<f64>,
    pub aether: Vec<UploadOnce>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub date_utc: String,
    pub machine: Machine,
    pub server_bin: String,
    pub runs: usize,
    pub sizes: Vec<SizeResult>,
    pub throughput_ratio: RatioTarget,
    pub rss: RssTarget,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub curl: String,
    /// 1/5/15-minute load averages before and after the run.
    pub load_before: String,
    pub load_after: String,
    /// CPU seconds other processes on this machine used while this run measured (the server
    /// and the upload children count as the benchmark's own); near 0 when quiet.
    pub other_cpu_s: f64,
}

impl Machine {
    pub fn now(load_before: String, other_cpu_s: f64) -> Self {
        Self {
            cores: host::cores(),
            cpu: host::cpu_model(),
            mem_total_mib: host::mem_total_mib(),
            kernel: host::kernel(),
            curl: host::first_line_of("curl"),
            load_before,
            load_after: host::load_average(),
            other_cpu_s,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SizeResult {
    pub size_mib: f64,
    pub size_bytes: u64,
    /// How the SDK sent the file: `single` streaming PUT or `multipart`.
    pub aether_mode: Mode,
    /// `curl -T` to a presigned URL: the PUT alone, from spawning curl to its exit.
    pub curl: Timing,
    /// `upload_artifact`: HEAD, presign, PUT or parts, complete (the server re-verifies the
    /// digest before answering), timed inside the child.
    pub aether: AetherTiming,
    /// Aether MB/s over curl MB/s at p50.
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct Mode {
    pub kind: String,
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
    pub max_concurrent_parts: usize,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    pub samples_s: Vec<f64>,
    pub p50_s: f64,
    pub p95_s: f64,
    /// File bytes over the p50 time, in MB (10^6 bytes) per second.
    pub throughput_mb_s: f64,
}

#[derive(Debug, Serialize)]
pub struct AetherTiming {
    #[serde(flatten)]
    pub timing: Timing,
    /// `VmHWM` of each run's upload process.
    pub peak_rss_mib: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct RatioTarget {
    /// The smallest per-size ratio: the target holds at every size or not at all.
    pub value: f64,
    pub at_size_mib: f64,
    pub target_min: f64,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct RssTarget {
    /// The worst run at each size.
    pub peak_mib_by_size: Vec<SizePeak>,
    /// Largest minus smallest of those peaks.
    pub spread_mib: f64,
    pub target_max_spread_mib: f64,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct SizePeak {
    pub size_mib: f64,
    pub peak_mib: f64,
}

pub fn build(machine: Machine, server_bin: String, runs: usize, measured: &[SizeSamples]) -> Result<Report> {
    let sizes = measured.iter().map(size_result).collect::<Result<Vec<_>>>()?;
    let worst = sizes.iter().min_by(|a, b| a.ratio.total_cmp(&b.ratio)).context("no size was measured")?;
    let throughput_ratio = RatioTarget {
        value: worst.ratio,
        at_size_mib: worst.size_mib,
        target_min: TARGET_MIN_RATIO,
        met: worst.ratio >= TARGET_MIN_RATIO,
    };
    let peaks: Vec<SizePeak> = sizes
        .iter()
        .map(|s| SizePeak { size_mib: s.size_mib, peak_mib: s.aether.peak_rss_mib.iter().copied().fold(0.0, f64::max) })
        .collect();
    let max = peaks.iter().map(|p| p.peak_mib).fold(f64::MIN, f64::max);
    let min = peaks.iter().map(|p| p.peak_mib).fold(f64::MAX, f64::min);
    let spread_mib = max - min;
    let rss = RssTarget {
        peak_mib_by_size: peaks,
        spread_mib,
        target_max_spread_mib: TARGET_MAX_RSS_SPREAD_MIB,
        met: spread_mib <= TARGET_MAX_RSS_SPREAD_MIB,
    };
    Ok(Report { schema: SCHEMA, date_utc: host::date_utc(), machine, server_bin, runs, sizes, throughput_ratio, rss })
}

fn size_result(m: &SizeSamples) -> Result<SizeResult> {
    let first = m.aether.first().context("no aether upload ran")?;
    let size_mb = m.size_bytes as f64 / MB;
    let curl = timing(percentiles(&m.curl_s), size_mb);
    let aether_s: Vec<f64> = m.aether.iter().map(|u| u.seconds).collect();
    let aether = timing(percentiles(&aether_s), size_mb);
    Ok(SizeResult {
        size_mib: m.size_bytes as f64 / MIB as f64,
        size_bytes: m.size_bytes,
        aether_mode: Mode {
            kind: first.mode.clone(),
            multipart_threshold_bytes: first.multipart_threshold_bytes,
            part_size_bytes: first.part_size_bytes,
            max_concurrent_parts: first.max_concurrent_parts,
        },
        ratio: aether.throughput_mb_s / curl.throughput_mb_s,
        curl,
        aether: AetherTiming { timing: aether, peak_rss_mib: m.aether.iter().map(|u| u.peak_rss_mib).collect() },
    })
}

fn timing(p: Percentiles, size_mb: f64) -> Timing {
    Timing { throughput_mb_s: size_mb / p.p50, p50_s: p.p50, p95_s: p.p95, samples_s: p.samples }
}

/// The human summary, on stderr: stdout is left for the path of the results.
pub fn print_table(r: &Report) {
    let mark = |met: bool| if met { "ok" } else { "MISSED" };
    let m = &r.machine;
    // The version only: the rest of curl's first line lists the libraries it was built with.
    let curl = m.curl.split(" (").next().unwrap_or_default();
    eprintln!("machine: {} cores, {}; {} runs; {curl}", m.cores, m.cpu, r.runs);
    let (other, before, after) = (m.other_cpu_s, &m.load_before, &m.load_after);
    eprintln!("other processes used {other:.1} CPU s during the run (load {before} -> {after})");
    eprintln!(
        "{:>9} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "size", "aether", "curl p50", "curl p95", "curl MB/s", "p50", "p95", "MB/s", "ratio", "peak RSS"
    );
    for s in &r.sizes {
        let (c, a) = (&s.curl, &s.aether.timing);
        let peak = s.aether.peak_rss_mib.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "{:>5.0} MiB {:<10} {:>8.3}s {:>8.3}s {:>9.1} {:>8.3}s {:>8.3}s {:>9.1} {:>7.3} {:>5.1} MiB",
            s.size_mib,
            s.aether_mode.kind,
            c.p50_s,
            c.p95_s,
            c.throughput_mb_s,
            a.p50_s,
            a.p95_s,
            a.throughput_mb_s,
            s.ratio,
            peak
        );
    }
    let t = &r.throughput_ratio;
    eprintln!(
        "throughput ratio (aether/curl MB/s, worst size {:.0} MiB)  {:.3}  target >= {}  {}",
        t.at_size_mib,
        t.value,
        t.target_min,
        mark(t.met)
    );
    let rss = &r.rss;
    eprintln!(
        "peak RSS spread across sizes  {:.1} MiB  target <= {} MiB  {}",
        rss.spread_mib,
        rss.target_max_spread_mib,
        mark(rss.met)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(seconds: f64, peak_rss_mib: f64) -> UploadOnce {
        UploadOnce {
            seconds,
            peak_rss_mib,
            uploaded_bytes: 0,
            mode: "single".into(),
            multipart_threshold_bytes: 0,
            part_size_bytes: 0,
            max_concurrent_parts: 1,
        }
    }

    fn machine() -> Machine {
        Machine::now(String::new(), 0.0)
    }

    #[test]
    fn the_worst_size_sets_the_ratio_and_peaks_set_the_spread() -> Result<()> {
        let measured = [
            SizeSamples { size_bytes: 64 * MIB, curl_s: vec![1.0, 1.0], aether: vec![once(1.1, 9.0), once(1.2, 10.0)] },
            SizeSamples { size_bytes: 512 * MIB, curl_s: vec![1.0], aether: vec![once(2.0, 30.0)] },
        ];
        let report = build(machine(), "server".into(), 2, &measured)?;
        assert_eq!(report.throughput_ratio.at_size_mib, 512.0);
        assert!((report.throughput_ratio.value - 0.5).abs() < 1e-9);
        assert!(!report.throughput_ratio.met);
        assert_eq!(report.rss.spread_mib, 20.0);
        assert!(!report.rss.met);
        Ok(())
    }

    #[test]
    fn flat_memory_and_curl_speed_meet_both_targets() -> Result<()> {
        let measured = [
            SizeSamples { size_bytes: 64 * MIB, curl_s: vec![1.0], aether: vec![once(1.1, 9.0)] },
            SizeSamples { size_bytes: 512 * MIB, curl_s: vec![8.0], aether: vec![once(8.5, 12.0)] },
        ];
        let report = build(machine(), "server".into(), 1, &measured)?;
        assert!(report.throughput_ratio.met && report.rss.met);
        Ok(())
    }
}
