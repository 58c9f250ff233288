//! Small dense linear algebra for the bandit's d×d statistics (d is tens, so plain
//! row-major `Vec<f64>` beats any general-purpose library's overhead).

/// `m += x xᵀ` for a row-major d×d `m`.
pub(crate) fn add_outer(m: &mut [f64], x: &[f64], scale: f64) {
    let d = x.len();
    for (i, &xi) in x.iter().enumerate() {
        let row = &mut m[i * d..(i + 1) * d];
        let s = scale * xi;
        for (r, &xj) in row.iter_mut().zip(x) {
            *r += s * xj;
        }
    }
}

/// `y = m x` for a row-major d×d `m`.
pub(crate) fn mat_vec(m: &[f64], x: &[f64], y: &mut [f64]) {
    let d = x.len();
    for (i, yi) in y.iter_mut().enumerate() {
        *yi = dot(&m[i * d..(i + 1) * d], x);
    }
}

/// The dot product, with four independent accumulators so the compiler can
/// vectorise it (a single running sum must be added in order and cannot be).
/// This is the inner loop of every decision.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// Sherman–Morrison: given `inv = A⁻¹`, makes it `(A + x xᵀ)⁻¹` in O(d²).
/// `scratch` must hold d values.
pub(crate) fn sherman_morrison_add(inv: &mut [f64], x: &[f64], scratch: &mut [f64]) {
    let d = x.len();
    mat_vec(inv, x, scratch); // u = A⁻¹ x (A⁻¹ is symmetric, so xᵀA⁻¹ = uᵀ)
    let denom = 1.0 + dot(x, scratch);
    for i in 0..d {
        let ui = scratch[i] / denom;
        let row = &mut inv[i * d..(i + 1) * d];
        for (r, &uj) in row.iter_mut().zip(scratch.iter()) {
            *r -= ui * uj;
        }
    }
}

/// The inverse of the symmetric positive-definite `a + lambda I` by Cholesky
/// decomposition. Returns `None` if the matrix is not positive definite (which
/// `lambda > 0` rules out up to rounding).
pub(crate) fn spd_inverse(a: &[f64], lambda: f64, d: usize) -> Option<Vec<f64>> {
    // L Lᵀ = a + λI
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j] + if i == j { lambda } else { 0.0 };
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inv = vec![0.0; d * d];
    let mut col = vec![0.0; d];
    for c in 0..d {
        for i in 0..d {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * d + k] * col[k];
            }
            col[i] = s / l[i * d + i];
        }
        for i in (0..d).rev() {
            let mut s = col[i];
            for k in i + 1..d {
                s -= l[k * d + i] * col[k];
            }
            col[i] = s / l[i * d + i];
        }
        for i in 0..d {
            inv[i * d + c] = col[i];
        }
    }
    Some(inv)
}

/// Batch ridge regression: θ = (λI + Σ xxᵀ)⁻¹ Σ r x over `(x, r)` samples, by
/// Gaussian elimination with partial pivoting. The reference the incremental
/// bandit statistics are tested against.
pub fn ridge_solve(samples: &[(Vec<f64>, f64)], lambda: f64, d: usize) -> Vec<f64> {
    let mut a = vec![0.0; d * (d + 1)];
    for i in 0..d {
        a[i * (d + 1) + i] = lambda;
    }
    for (x, r) in samples {
        for i in 0..d {
            for j in 0..d {
                a[i * (d + 1) + j] += x[i] * x[j];
            }
            a[i * (d + 1) + d] += r * x[i];
        }
    }
    let w = d + 1;
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&p, &q| a[p * w + col].abs().total_cmp(&a[q * w + col].abs()))
            .unwrap_or(col);
        for k in 0..w {
            a.swap(col * w + k, pivot * w + k);
        }
        for row in 0..d {
            if row != col {
                let f = a[row * w + col] / a[col * w + col];
                for k in col..w {
                    a[row * w + k] -= f * a[col * w + k];
                }
            }
        }
    }
    (0..d).map(|i| a[i * w + d] / a[i * w + i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_identity() {
        let d = 3;
        let mut a = vec![0.0; 9];
        add_outer(&mut a, &[1.0, 2.0, 0.5], 1.0);
        add_outer(&mut a, &[0.0, 1.0, -1.0], 1.0);
        let inv = spd_inverse(&a, 0.5, d).expect("spd");
        for i in 0..d {
            for j in 0..d {
                let v: f64 = (0..d)
                    .map(|k| (a[i * d + k] + if i == k { 0.5 } else { 0.0 }) * inv[k * d + j])
                    .sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn sherman_morrison_matches_fresh_inverse() {
        let d = 3;
        let mut a = vec![0.0; 9];
        add_outer(&mut a, &[1.0, 2.0, 0.5], 1.0);
        let mut inv = spd_inverse(&a, 1.0, d).expect("spd");
        let x = [0.3, -1.0, 2.0];
        let mut scratch = [0.0; 3];
        sherman_morrison_add(&mut inv, &x, &mut scratch);
        add_outer(&mut a, &x, 1.0);
        let fresh = spd_inverse(&a, 1.0, d).expect("spd");
        for (p, q) in inv.iter().zip(&fresh) {
            assert!((p - q).abs() < 1e-12);
        }
    }
}
