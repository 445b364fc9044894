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
