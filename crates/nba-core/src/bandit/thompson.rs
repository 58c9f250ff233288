//! Thompson sampling's probability of choosing each candidate, computed
//! rather than estimated from a few more draws.
//!
//! Each candidate's score is drawn on its own from N(mᵢ, sᵢ²), so candidate
//! i wins with probability
//!
//! ```text
//! P(i) = ∫ φ(z) · Π_{j≠i} Φ((mᵢ + sᵢ·z − mⱼ) / sⱼ) dz
//! ```
//!
//! a one-dimensional integral, taken here by adaptive Simpson's rule over
//! candidate i's own score to about 1e-4. A candidate with no uncertainty (s = 0) is a step, which the adaptive rule
//! narrows in on; candidates tied with no uncertainty share their wins
//! evenly, as the tie-break does.

/// The integrand's range in standard deviations of the candidate: the normal
/// density outside it is below 1e-15.
const REACH: f64 = 8.3;

/// Absolute accuracy asked of the integral: a hundredth of the ±0.01 a
/// logged propensity needs, at a few hundred integrand evaluations.
const TOLERANCE: f64 = 1e-4;

/// How often the adaptive rule may halve an interval: enough to place a
/// step of a candidate with no uncertainty to 16.6 / 2^40 ≈ 1.5e-11.
const MAX_DEPTH: u32 = 40;

/// An integrand value below this is taken as 0.
const NEGLIGIBLE: f64 = 1e-12;

/// A standard deviation of 0 taken as this, so that a candidate with no
/// uncertainty is a step and ties share evenly.
const TINY_SD: f64 = 1e-150;

/// The probability that candidate `i` has the largest of scores drawn from
/// N(`means`ⱼ, `sds`ⱼ²), each on its own: adaptive Simpson's rule over its
/// own score.
pub(crate) fn win_probability(means: &[f64], sds: &[f64], i: usize) -> f64 {
    let sd = |j: usize| sds[j].max(TINY_SD);
    let (mi, si) = (means[i], sd(i));
    let (low, high) = (mi - REACH * si, mi + REACH * si);
    // Candidates that are below i's whole range lose to it for sure; one
    // above it wins for sure.
    let mut rivals = Vec::with_capacity(means.len());
    for j in (0..means.len()).filter(|j| *j != i) {
        let (mj, sj) = (means[j], sd(j));
        if mj - REACH * sj > high {
            return 0.0;
        }
        if mj + REACH * sj >= low {
            rivals.push((mj, sj));
        }
    }
    if rivals.is_empty() {
        return 1.0;
    }
    // The strongest rivals first, so that the product falls below notice
    // after a few of them where i loses.
    rivals.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let integrand = |z: f64| {
        let mut product = normal_pdf(z);
        for (mj, sj) in &rivals {
            if product < NEGLIGIBLE {
                return 0.0;
            }
            // The gap first: with no uncertainty, mᵢ + sᵢ·z would round to mᵢ.
            product *= normal_cdf(((mi - mj) + si * z) / sj);
        }
        product
    };
    // Eight panels to begin with, so that no feature falls between the
    // first few points.
    let panels = 8;
    let width = 2.0 * REACH / f64::from(panels);
    let total: f64 = (0..panels)
        .map(|k| {
            let a = -REACH + width * f64::from(k);
            simpson(&integrand, a, a + width, TOLERANCE / f64::from(panels))
        })
        .sum();
    total.clamp(0.0, 1.0)
}

/// Every candidate's probability of winning, each as [`win_probability`]
/// gives it (so as the logged propensity is), summing to 1 within the
/// integrals' accuracy.
pub(crate) fn win_probabilities(means: &[f64], sds: &[f64]) -> Vec<f64> {
    (0..means.len())
        .map(|i| win_probability(means, sds, i))
        .collect()
}

/// ∫ f over [a, b] by adaptive Simpson's rule to `tolerance`.
fn simpson(f: &impl Fn(f64) -> f64, a: f64, b: f64, tolerance: f64) -> f64 {
    let (fa, fm, fb) = (f(a), f(0.5 * (a + b)), f(b));
    let whole = (b - a) / 6.0 * (fa + 4.0 * fm + fb);
    refine(f, [a, b], [fa, fm, fb], whole, tolerance, MAX_DEPTH)
}

fn refine(
    f: &impl Fn(f64) -> f64,
    [a, b]: [f64; 2],
    [fa, fm, fb]: [f64; 3],
    whole: f64,
    tolerance: f64,
    depth: u32,
) -> f64 {
    let m = 0.5 * (a + b);
    let (lm, rm) = (0.5 * (a + m), 0.5 * (m + b));
    let (flm, frm) = (f(lm), f(rm));
    let left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
    let right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
    let delta = left + right - whole;
    if depth == 0 || delta.abs() <= 15.0 * tolerance {
        return left + right + delta / 15.0;
    }
    refine(f, [a, m], [fa, flm, fm], left, tolerance / 2.0, depth - 1)
        + refine(f, [m, b], [fm, frm, fb], right, tolerance / 2.0, depth - 1)
}

/// The standard normal density.
fn normal_pdf(z: f64) -> f64 {
    const INV_SQRT_TAU: f64 = 0.398_942_280_401_432_7;
    INV_SQRT_TAU * (-0.5 * z * z).exp()
}

/// The standard normal distribution function, through erfc (Numerical
/// Recipes' Chebyshev fit: relative error below 1.2e-7 everywhere).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecisionRng;

    /// Each candidate's share of wins in `draws` draws.
    fn monte_carlo(means: &[f64], sds: &[f64], draws: usize) -> Vec<f64> {
        let mut rng = DecisionRng::new(3, "monte-carlo");
        let mut wins = vec![0.0; means.len()];
        for _ in 0..draws {
            let mut best = (0, f64::NEG_INFINITY);
            for (j, (m, s)) in means.iter().zip(sds).enumerate() {
                let score = m + s * rng.normal();
                if score > best.1 {
                    best = (j, score);
                }
            }
            wins[best.0] += 1.0;
        }
        wins.iter().map(|w| w / draws as f64).collect()
    }

    #[test]
    fn the_cdf_is_the_normal_one() {
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.96, 0.024_997_895_148_220_43),
            (3.0, 0.998_650_101_968_369_9),
            (-6.0, 9.865_876_450_376_98e-10),
        ] {
            let got = normal_cdf(x);
            assert!(
                (got - want).abs() <= 1.2e-7 * want,
                "Φ({x}) = {got}, not {want}"
            );
        }
    }

    #[test]
    fn win_probabilities_agree_with_100_000_draws_to_0_01() {
        let mut rng = DecisionRng::new(17, "cases");
        let mut cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (vec![0.1, 0.5, 0.45], vec![0.1, 0.1, 0.1]),
            // Uncertainties a thousand times apart: a step against a bell.
            (vec![0.30, 0.31, 0.2], vec![0.0001, 0.1, 0.05]),
            (vec![0.5, 0.5], vec![0.2, 0.2]),
            // No uncertainty beside some.
            (vec![0.4, 0.3, 0.35], vec![0.0, 0.1, 0.02]),
        ];
        for k in [2, 5, 10, 20, 80] {
            let means = (0..k).map(|_| rng.unit() * 0.2).collect();
            let sds = (0..k).map(|_| 0.005 + rng.unit() * 0.1).collect();
            cases.push((means, sds));
        }
        for (means, sds) in &cases {
            let exact = win_probabilities(means, sds);
            let sampled = monte_carlo(means, sds, 100_000);
            for (j, (e, s)) in exact.iter().zip(&sampled).enumerate() {
                assert!(
                    (e - s).abs() < 0.01,
                    "candidate {j} of {means:?} / {sds:?}: computed {e}, sampled {s}"
                );
            }
            let total: f64 = exact.iter().sum();
            assert!((total - 1.0).abs() < 1e-3, "{means:?} / {sds:?}: {total}");
        }
    }

    #[test]
    fn candidates_tied_with_no_uncertainty_share_evenly() {
        let means = [0.2, 0.5, 0.5, 0.1, 0.5];
        let sds = [0.0; 5];
        let third = 1.0 / 3.0;
        for (i, want) in [0.0, third, third, 0.0, third].into_iter().enumerate() {
            let got = win_probability(&means, &sds, i);
            assert!((got - want).abs() < 1e-6, "{i}: {got}");
        }
    }

    #[test]
    fn a_candidate_far_ahead_wins_for_sure() {
        assert!(1.0 - win_probability(&[10.0, 0.0], &[0.1, 0.1], 0) < 1e-6);
        assert!(win_probability(&[10.0, 0.0], &[0.1, 0.1], 1) < 1e-6);
    }
}
