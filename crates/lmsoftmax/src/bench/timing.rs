//! Wall-clock timing: warm-up, then the median of repeated runs.

use std::time::Instant;

/// Runs `f` `warmup` times, then `reps` times, and returns the median and the minimum in ms.
///
/// ```
/// let (median, min) = lmsoftmax::bench::timing::median_ms(1, 5, || std::hint::black_box(1 + 1));
/// assert!(min <= median);
/// ```
pub fn median_ms<R>(warmup: usize, reps: usize, mut f: impl FnMut() -> R) -> (f64, f64) {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    };
    (median, times[0])
}

/// The peak resident memory of this process so far, MiB (Linux's `VmHWM` in
/// `/proc/self/status`); `None` elsewhere or if it cannot be read.
///
/// ```
/// let peak = lmsoftmax::bench::timing::peak_rss_mib();
/// if cfg!(target_os = "linux") {
///     assert!(peak.is_some_and(|mib| mib > 0.0));
/// }
/// ```
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
