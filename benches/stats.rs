//! Timing and summarising samples, the same way in every benchmark.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

/// Runs `f` and returns its result with the wall-clock seconds it took.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed().as_secs_f64()))
}

/// Samples and their nearest-rank percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub samples: Vec<f64>,
    pub p50: f64,
    pub p95: f64,
}

/// Nearest-rank percentiles: with few samples p95 is the worst run, never an interpolation that
/// hides it.
pub fn percentiles(samples: &[f64]) -> Percentiles {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = sorted.len();
        let index = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        sorted.get(index).copied().unwrap_or(f64::NAN)
    };
    Percentiles { samples: samples.to_vec(), p50: rank(0.50), p95: rank(0.95) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((p.p50, p.p95), (3.0, 5.0));
        let p = percentiles(&(1..=30).map(f64::from).collect::<Vec<_>>());
        assert_eq!((p.p50, p.p95), (15.0, 29.0));
    }
}
