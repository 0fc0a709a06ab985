//! The forward pass of an f32 ensemble on the CPU, without candle's
//! per-operation costs, for one hour or several at once.
//!
//! After the first layer's product (a backtest's [`crate::MarketProjection`],
//! a live [`crate::PreparedHour`], or the whole first layer) a decision is
//! left with small matrix-vector products: `[N, H2, H1] x [N, H1, 1]` and
//! the like. Through candle each layer is a batched matmul, a broadcast add
//! and an activation, each a new tensor, and gemm's matvec streams the
//! weights once per hour, which made it memory-bound (BENCHMARKS.md, issue
//! 18, goal 3). Here every layer is one pass over its weights, rows side by
//! side (the weights are `[out, in]`, so a row is contiguous), the bias and
//! activation fused, and several hours' columns share each weight load: a
//! backtest decides hours ahead this way (`Ensemble::infer_projected_hours`).
//! Each (row, hour) sum runs in the same order whatever runs beside it, so
//! an hour's result is the same bits alone or in a batch.
//!
//! The dot products are written with `pulp`'s vector types (already linked
//! by gemm) and run under its dispatch, which compiles them for the widest
//! instruction set it is built for (AVX2 + FMA; AVX-512 was measured and
//! not enabled: results would then depend on the CPU's vector width) and
//! picks it at run time. Only the summation order differs from candle's:
//! results agree to float rounding (tested against the candle path).

// pulp compiles code for the CPU's instruction set only where it is inlined
// into its dispatch: the kernels must be inlined, whatever the heuristics say.
#![allow(clippy::inline_always)]

use candle_core::{DType as CandleDType, Device, Storage, Tensor};
use pulp::{Simd, WithSimd};

use crate::manifest::Activation;

/// Whether a group's tensors can run here: f32 on the CPU.
pub(crate) fn runs_here(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == CandleDType::F32)
}

/// Calls `f` with the f32 values of `t` (contiguous, in layout order);
/// `None` when `t` is not a contiguous f32 CPU tensor.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>().ok()?.get(start..end).map(f),
        _ => None,
    }
}

/// Rows of a layer taken together for one column: each input vector is
/// loaded once per `ROWS` rows, and the rows' streams run side by side.
const ROWS: usize = 8;
/// Rows and columns (hours) taken together when several hours run at once:
/// each weight vector is loaded once per `COLS` columns (eight accumulators,
/// two weight and four input registers: within AVX2's sixteen).
const BATCH_ROWS: usize = 2;
const COLS: usize = 4;

/// `[[rows[r] . xs[c] for c] for r]`, one vector accumulator per (row,
/// column). Each (row, column) sum is done in the same order whatever `R`
/// and `C` are, so a column's result does not depend on the columns
/// computed beside it (bit for bit).
#[inline(always)]
fn dots<const R: usize, const C: usize, S: Simd>(
    simd: S,
    rows: [&[f32]; R],
    xs: [&[f32]; C],
) -> [[f32; C]; R] {
    let width = xs.first().map_or(0, |x| x.len());
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; C]; R];
    let mut sums = [[0.0f32; C]; R];
    let x_heads = xs.map(|x| S::as_simd_f32s(x).0);
    let heads = rows.map(|row| S::as_simd_f32s(row).0);
    let vectors = x_heads.first().map_or(0, |x| x.len());
    let same_shape = rows.iter().all(|r| r.len() == width)
        && xs.iter().all(|x| x.len() == width)
        && heads.iter().all(|h| h.len() == vectors)
        && x_heads.iter().all(|h| h.len() == vectors);
    if !same_shape {
        return sums;
    }
    for i in 0..vectors {
        for r in 0..R {
            let w = heads[r][i];
            for c in 0..C {
                acc[r][c] = simd.mul_add_e_f32s(w, x_heads[c][i], acc[r][c]);
            }
        }
    }
    let lanes = width - xs.first().map_or(0, |x| S::as_simd_f32s(x).1.len());
    for r in 0..R {
        for c in 0..C {
            if vectors > 0 {
                sums[r][c] = simd.reduce_sum_f32s(acc[r][c]);
            }
            for k in lanes..width {
                sums[r][c] += rows[r][k] * xs[c][k];
            }
        }
    }
    sums
}

/// `f(column, row, rows[row] . xs[column])` for every row of `weights`
/// (rows of the columns' length) and every column.
#[inline(always)]
fn each_dot<S: Simd>(
    simd: S,
    weights: &[f32],
    xs: &[&[f32]],
    mut f: impl FnMut(usize, usize, f32),
) {
    let width = xs.first().map_or(0, |x| x.len()).max(1);
    let total = weights.len() / width;
    let row = |r: usize| &weights[r * width..(r + 1) * width];
    let mut r = 0;
    if xs.len() >= COLS {
        while r + BATCH_ROWS <= total {
            let rows: [&[f32]; BATCH_ROWS] = std::array::from_fn(|k| row(r + k));
            let mut c = 0;
            while c + COLS <= xs.len() {
                let cols: [&[f32]; COLS] = std::array::from_fn(|k| xs[c + k]);
                for (k, sums) in dots(simd, rows, cols).iter().enumerate() {
                    for (j, v) in sums.iter().enumerate() {
                        f(c + j, r + k, *v);
                    }
                }
                c += COLS;
            }
            for (c, x) in xs.iter().enumerate().skip(c) {
                for (k, [v]) in dots(simd, rows, [*x]).iter().enumerate() {
                    f(c, r + k, *v);
                }
            }
            r += BATCH_ROWS;
        }
    }
    while r + ROWS <= total {
        let rows: [&[f32]; ROWS] = std::array::from_fn(|k| row(r + k));
        for (c, x) in xs.iter().enumerate() {
            for (k, [v]) in dots(simd, rows, [*x]).iter().enumerate() {
                f(c, r + k, *v);
            }
        }
        r += ROWS;
    }
    while r < total {
        for (c, x) in xs.iter().enumerate() {
            let [[v]] = dots(simd, [row(r)], [*x]);
            f(c, r, v);
        }
        r += 1;
    }
}

#[inline(always)]
fn activate(v: f32, activation: Activation) -> f32 {
    match activation {
        Activation::Relu => v.max(0.0),
        Activation::Tanh => v.tanh(),
        Activation::None => v,
    }
}

/// One stacked layer for several hours: for each of `n` members and each
/// hour, `y = act(W x + b)` with `W` `[out, in]` (row-major, member after
/// member) and `b` `[out]` per member; `xs[h]` is hour `h`'s input (`[in]`
/// per member, member after member), `ys[h]` its output.
struct StackedLayer<'a> {
    weights: &'a [f32],
    biases: &'a [f32],
    activation: Activation,
    n: usize,
    xs: &'a [Vec<f32>],
    ys: &'a mut [Vec<f32>],
}

impl WithSimd for StackedLayer<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let n = self.n.max(1);
        let inputs = self.xs.first().map_or(0, Vec::len) / n;
        let outputs = self.ys.first().map_or(0, Vec::len) / n;
        for m in 0..n {
            let weights = &self.weights[m * outputs * inputs..(m + 1) * outputs * inputs];
            let biases = &self.biases[m * outputs..(m + 1) * outputs];
            let xs: Vec<&[f32]> = self
                .xs
                .iter()
                .map(|x| &x[m * inputs..(m + 1) * inputs])
                .collect();
            let ys = &mut *self.ys;
            each_dot(simd, weights, &xs, |h, r, v| {
                ys[h][m * outputs + r] = activate(v + biases[r], self.activation);
            });
        }
    }
}

/// `pre[r] += W[r, cols] . v` for every row `r` of a first layer.
struct AddColumns<'a> {
    weights: &'a [f32],
    inputs: usize,
    cols: std::ops::Range<usize>,
    v: &'a [f32],
    pre: &'a mut [f32],
}

impl WithSimd for AddColumns<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let width = self.inputs.max(1);
        let total = (self.weights.len() / width).min(self.pre.len());
        let row = |r: usize| &self.weights[r * width..][self.cols.clone()];
        let mut r = 0;
        while r + ROWS <= total {
            let rows: [&[f32]; ROWS] = std::array::from_fn(|k| row(r + k));
            for (k, [v]) in dots(simd, rows, [self.v]).iter().enumerate() {
                self.pre[r + k] += v;
            }
            r += ROWS;
        }
        while r < total {
            let [[v]] = dots(simd, [row(r)], [self.v]);
            self.pre[r] += v;
            r += 1;
        }
    }
}

/// Runs a unit from its first layer's pre-activations without the bias,
/// for several hours (`pres[h]`: `[N, H1]` flat): the first bias and
/// activation, then every remaining layer, all hours together. Returns,
/// per hour, one row of outputs per member; `None` when a tensor is not an
/// f32 CPU tensor (the caller then runs candle). An hour's result is the
/// same, bit for bit, whatever hours run beside it.
pub(crate) fn run_from_pre(
    layers: &[(Tensor, Tensor, Activation)],
    n: usize,
    mut pres: Vec<Vec<f32>>,
) -> Option<Vec<Vec<Vec<f32>>>> {
    let tensors: Vec<&Tensor> = layers.iter().flat_map(|(w, b, _)| [w, b]).collect();
    if !runs_here(&tensors) {
        return None;
    }
    let ((_, b1, act1), rest) = layers.split_first()?;
    with_f32(b1, |b| {
        for pre in &mut pres {
            for (v, bias) in pre.iter_mut().zip(b) {
                *v = activate(*v + bias, *act1);
            }
        }
    })?;
    let mut xs = pres;
    for (w, b, act) in rest {
        let (members, outputs, inputs) = w.dims3().ok()?;
        if members != n || xs.iter().any(|x| x.len() != n * inputs) {
            return None;
        }
        let mut ys = vec![vec![0.0; n * outputs]; xs.len()];
        with_f32(w, |weights| {
            with_f32(b, |biases| {
                pulp::Arch::new().dispatch(StackedLayer {
                    weights,
                    biases,
                    activation: *act,
                    n,
                    xs: &xs,
                    ys: &mut ys,
                });
            })
        })??;
        xs = ys;
    }
    Some(
        xs.into_iter()
            .map(|x| {
                let outputs = (x.len() / n.max(1)).max(1);
                x.chunks(outputs).map(<[f32]>::to_vec).collect()
            })
            .collect(),
    )
}

/// `pre[m*H + h] += sum_p W[m, h, cols.start + p] * v[p]` for each of `n`
/// members: the product of some columns of a stacked first layer
/// (`[N, H, in]`) with `v`, added to `pre` (`[N, H]`). `None` when the
/// weight is not an f32 CPU tensor or the shapes do not match.
pub(crate) fn add_columns(
    first: &Tensor,
    n: usize,
    cols: std::ops::Range<usize>,
    v: &[f32],
    pre: &mut [f32],
) -> Option<()> {
    let (members, hidden, inputs) = first.dims3().ok()?;
    if members != n || cols.end > inputs || cols.len() != v.len() || pre.len() != n * hidden {
        return None;
    }
    with_f32(first, |weights| {
        pulp::Arch::new().dispatch(AddColumns {
            weights,
            inputs,
            cols,
            v,
            pre,
        });
    })
}

/// A whole forward pass of `n` stacked members on one prepared state `x`
/// (`[in]`, shared by the members). `None` when a tensor is not an f32 CPU
/// tensor.
pub(crate) fn run_whole(
    layers: &[(Tensor, Tensor, Activation)],
    n: usize,
    x: &[f32],
) -> Option<Vec<Vec<f32>>> {
    let (first, _, _) = layers.first()?;
    let (_, hidden, _) = first.dims3().ok()?;
    let mut pre = vec![0.0; n * hidden];
    add_columns(first, n, 0..x.len(), x, &mut pre)?;
    run_from_pre(layers, n, vec![pre])?.pop()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Values in [-1, 1], different everywhere, from a fixed xorshift stream.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        crate::bench::uniform_values(len, &mut (seed | 1))
    }

    fn tensor(dims: (usize, usize, usize), seed: u64) -> Tensor {
        Tensor::from_vec(values(dims.0 * dims.1 * dims.2, seed), dims, &Device::Cpu).unwrap()
    }

    /// Three stacked layers with lengths that are not multiples of the lanes.
    fn stack(n: usize) -> Vec<(Tensor, Tensor, Activation)> {
        let sizes = [(37, 70), (19, 37), (3, 19)];
        let acts = [Activation::Relu, Activation::Tanh, Activation::None];
        sizes
            .iter()
            .zip(acts)
            .enumerate()
            .map(|(i, (&(out, inp), act))| {
                let seed = 10 * i as u64;
                (
                    tensor((n, out, inp), seed + 1),
                    tensor((n, out, 1), seed + 2),
                    act,
                )
            })
            .collect()
    }

    /// The same pass through candle: batched matmul, broadcast add, activation.
    fn candle_pass(layers: &[(Tensor, Tensor, Activation)], n: usize, x: &[f32]) -> Vec<Vec<f32>> {
        let mut h = Tensor::from_vec(x.to_vec(), (1, x.len(), 1), &Device::Cpu)
            .unwrap()
            .broadcast_as((n, x.len(), 1))
            .unwrap()
            .contiguous()
            .unwrap();
        for (w, b, act) in layers {
            h = crate::model::activate(&w.matmul(&h).unwrap().broadcast_add(b).unwrap(), *act)
                .unwrap();
        }
        h.squeeze(2).unwrap().to_vec2::<f32>().unwrap()
    }

    #[test]
    fn the_kernels_compute_what_candle_computes() {
        for n in [1, 4] {
            let layers = stack(n);
            let x = values(70, 99);
            let expected = candle_pass(&layers, n, &x);
            let got = run_whole(&layers, n, &x).unwrap();
            assert_eq!(got.len(), n);
            for (e, g) in expected.iter().flatten().zip(got.iter().flatten()) {
                assert!((e - g).abs() <= 1e-5, "n={n}: {e} vs {g}");
            }
            // Some outputs are far from zero: the comparison is not of zeros.
            assert!(expected.iter().flatten().any(|v| v.abs() > 0.1));
            assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![3; n]);
        }
    }

    #[test]
    fn a_split_first_layer_adds_up_to_the_whole() {
        let n = 3;
        let layers = stack(n);
        let x = values(70, 7);
        let whole = run_whole(&layers, n, &x).unwrap();
        let mut pre = vec![0.0; n * 37];
        add_columns(&layers[0].0, n, 0..4, &x[..4], &mut pre).unwrap();
        add_columns(&layers[0].0, n, 4..70, &x[4..], &mut pre).unwrap();
        let split = run_from_pre(&layers, n, vec![pre]).unwrap().pop().unwrap();
        for (a, b) in whole.iter().flatten().zip(split.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn other_dtypes_and_wrong_shapes_are_left_to_candle() {
        let n = 2;
        let layers = stack(n);
        let f16: Vec<_> = layers
            .iter()
            .map(|(w, b, a)| {
                (
                    w.to_dtype(CandleDType::F16).unwrap(),
                    b.to_dtype(CandleDType::F16).unwrap(),
                    *a,
                )
            })
            .collect();
        assert!(!runs_here(&[&f16[0].0]));
        assert!(run_whole(&f16, n, &values(70, 3)).is_none());
        // Columns past the layer's inputs, or values of another length.
        let mut pre = vec![0.0; n * 37];
        assert!(add_columns(&layers[0].0, n, 60..71, &values(11, 4), &mut pre).is_none());
        assert!(add_columns(&layers[0].0, n, 0..4, &values(5, 4), &mut pre).is_none());
        assert!(add_columns(&layers[0].0, n + 1, 0..4, &values(4, 4), &mut pre).is_none());
        // A transposed (non-contiguous) weight is not read as if it were contiguous.
        assert!(with_f32(&layers[0].0.transpose(1, 2).unwrap(), |_| ()).is_none());
    }
}
