//! What the controller's benchmarks share: percentiles and the verdict printed beside a
//! figure and its target.

use std::time::Duration;

/// The `p` percentile (0.0..=1.0) of `sorted`, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// "ok", or "OVER BUDGET".
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "OVER BUDGET"
    }
}
