//! The bootstrap interval of the relative change of the median wall time, seeded so that a verdict is reproducible.

/// Resamples per interval: with 10 000 the 2.5th and 97.5th percentiles move by a fraction of a
/// percent from one seed to another, and a pipeline's worth of rows still takes milliseconds.
pub const RESAMPLES: usize = 10_000;

/// Share of the resampled changes left out on each side: a 95% interval, as criterion.rs uses.
const TAIL: f64 = 0.025;

/// Fixed, so that the same two results directories always get the same verdict.
const SEED: u64 = 0x6c61_7965_7262_656e;

/// splitmix64 (Steele, Lea and Flood, 2014): statistically sound for resampling and ten lines long,
/// which a random-number crate would not earn its place against.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by multiply-shift; its bias is below 2^-50 for the sample sizes here.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The median of values already sorted; the mean of the middle pair for an even count, as `Spread` does.
fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    median_of_sorted(&sorted)
}

/// Median of a resample drawn with replacement into `buffer`.
fn resampled_median(values: &[f64], buffer: &mut [f64], rng: &mut SplitMix64) -> f64 {
    for slot in buffer.iter_mut() {
        *slot = values[rng.below(values.len())];
    }
    buffer.sort_unstable_by(f64::total_cmp);
    median_of_sorted(buffer)
}

/// (candidate - baseline) / baseline; a zero baseline (never a real job) is kept finite.
fn relative(baseline: f64, candidate: f64) -> f64 {
    (candidate - baseline) / baseline.max(f64::MIN_POSITIVE)
}

/// The change of the median wall time between two runs, with the uncertainty their iterations leave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// (candidate median - baseline median) / baseline median, of the iterations as measured.
    pub change: f64,
    /// 95% percentile-bootstrap interval of that change: both sides resampled independently.
    pub interval: (f64, f64),
}

/// `None` when either side has no value.
pub fn relative_change_of_median(baseline_ms: &[f64], candidate_ms: &[f64]) -> Option<Estimate> {
    if baseline_ms.is_empty() || candidate_ms.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(SEED);
    let mut base_buffer = vec![0.0; baseline_ms.len()];
    let mut cand_buffer = vec![0.0; candidate_ms.len()];
    let mut changes: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let b = resampled_median(baseline_ms, &mut base_buffer, &mut rng);
            let c = resampled_median(candidate_ms, &mut cand_buffer, &mut rng);
            relative(b, c)
        })
        .collect();
    changes.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| changes[((RESAMPLES - 1) as f64 * q).round() as usize];
    Some(Estimate {
        change: relative(median(baseline_ms), median(candidate_ms)),
        interval: (at(TAIL), at(1.0 - TAIL)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` iterations of a job whose true time is `ms`, each off by up to ±`noise` (uniform).
    fn noisy(rng: &mut SplitMix64, n: usize, ms: f64, noise: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                ms * (1.0 + noise * (2.0 * unit - 1.0))
            })
            .collect()
    }

    /// Share of `trials` simulated comparisons whose interval lies entirely above `threshold`.
    fn found_slower(n: usize, slowdown: f64, noise: f64, threshold: f64, trials: usize) -> f64 {
        let mut rng = SplitMix64::new(42);
        let found = (0..trials)
            .filter(|_| {
                let base = noisy(&mut rng, n, 60_000.0, noise);
                let cand = noisy(&mut rng, n, 60_000.0 * (1.0 + slowdown), noise);
                relative_change_of_median(&base, &cand).unwrap().interval.0 > threshold
            })
            .count();
        found as f64 / trials as f64
    }

    #[test]
    fn the_interval_holds_the_change_and_is_reproducible() {
        let base = [100.0, 104.0, 97.0, 101.0, 99.0];
        let cand = [131.0, 127.0, 135.0, 129.0, 133.0];
        let e = relative_change_of_median(&base, &cand).unwrap();
        assert!((e.change - 0.31).abs() < 1e-9, "{e:?}");
        assert!(
            e.interval.0 <= e.change && e.change <= e.interval.1,
            "{e:?}"
        );
        // The extremes bound every resampled change.
        assert!(e.interval.0 >= 127.0 / 104.0 - 1.0 && e.interval.1 <= 135.0 / 97.0 - 1.0);
        assert_eq!(relative_change_of_median(&base, &cand), Some(e));
        assert_eq!(relative_change_of_median(&[], &cand), None);
    }

    #[test]
    fn identical_values_give_an_interval_of_zero_width() {
        let e = relative_change_of_median(&[50.0; 4], &[50.0; 3]).unwrap();
        assert_eq!((e.change, e.interval), (0.0, (0.0, 0.0)));
    }

    #[test]
    fn with_three_iterations_the_interval_spans_the_extremes() {
        // Each resampled median is one of the three values; the worst pairing comes up in
        // (7/27)^2 = 6.7% of resamples, more than the 2.5% tail, so it bounds the interval.
        let e = relative_change_of_median(&[90.0, 100.0, 110.0], &[120.0, 130.0, 140.0]).unwrap();
        assert!((e.interval.0 - (120.0 / 110.0 - 1.0)).abs() < 1e-9, "{e:?}");
        assert!((e.interval.1 - (140.0 / 90.0 - 1.0)).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn five_noisy_iterations_find_a_30_percent_slowdown_and_no_phantom_one() {
        // ±10% uniform noise per iteration, threshold 10%, 200 simulated comparisons each.
        let power = found_slower(5, 0.30, 0.10, 0.10, 200);
        assert!(
            power >= 0.9,
            "30% slowdown found in only {power:.2} of trials"
        );
        let false_alarms = found_slower(5, 0.0, 0.10, 0.10, 200);
        assert!(
            false_alarms == 0.0,
            "phantom regressions in {false_alarms:.2} of trials"
        );
    }

    /// `cargo test --lib power_table -- --ignored --nocapture`: the figures the README quotes
    /// (share of trials found regressed at threshold 10%, for slowdowns of 0, 15, 20, 30 and 50%).
    #[test]
    #[ignore = "slow; prints the table the README quotes"]
    fn power_table() {
        for noise in [0.05, 0.10, 0.20] {
            for n in [3, 5, 7, 10, 20] {
                let row: Vec<String> = [0.0, 0.15, 0.20, 0.30, 0.50]
                    .iter()
                    .map(|s| format!("{:5.2}", found_slower(n, *s, noise, 0.10, 200)))
                    .collect();
                println!("noise ±{noise:.2} n={n:2}: {}", row.join(" "));
            }
        }
    }
}
