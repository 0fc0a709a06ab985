//! The live first layer, prepared an hour ahead.
//!
//! The market part of a state is `L` lags of `S*F` features, oldest first
//! (`trader_core::market_state`), and a member's first layer is linear in it:
//! `W_m x_m = W_older x_older + W_newest x_newest`. When hour `t` has been
//! decided, every lag of hour `t + 1` but its newest is already known (they
//! are lags 0..L-2 of hour `t`), so `W_older x_older` can be computed then,
//! off the decision path ([`Ensemble::prepare_hour`]). When the bar of
//! `t + 1` arrives, the decision only adds `W_newest x_newest` (`S*F`
//! columns), the portfolio product and the bias, and runs the remaining
//! layers ([`Ensemble::infer_prepared`]): about a quarter of the bytes a
//! whole forward pass streams at the reference size.
//!
//! The sum is split in three, so actions differ from [`Ensemble::infer`] by
//! float rounding (about 1e-7 relative in f32), not more.

use candle_core::{DType as CandleDType, Tensor};

use crate::ensemble::{Decision, Ensemble};
use crate::forward::{InputSpec, Unit, prepare_market, prepare_portfolio, run_err};
use crate::kernel;
use crate::model::{activate, candle_dtype};
use crate::{EnsembleError, aggregate};

/// Every member's `W_older x_older` for one hour to come.
pub struct PreparedHour {
    /// Per unit (as [`Ensemble::units`] orders them): `[N, H, 1]`.
    groups: Vec<Tensor>,
}

impl std::fmt::Debug for PreparedHour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedHour")
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// `S*F`: the values of one lag of `spec`'s market part.
#[must_use]
pub fn lag_width(spec: &InputSpec) -> usize {
    spec.symbols.len() * spec.features.len()
}

/// Checks `blocks` against the specs: one block per spec (`given` names them
/// in the count's message), each of `expected(spec)` values (the count, and
/// how the message states it) all finite; the message says what is wrong.
pub(crate) fn check_blocks(
    blocks: &[Vec<f32>],
    specs: &[InputSpec],
    (given, what): (&str, &str),
    expected: impl Fn(&InputSpec) -> (usize, String),
) -> Result<(), String> {
    if blocks.len() != specs.len() {
        return Err(format!(
            "{} {given} given for {} distinct member inputs",
            blocks.len(),
            specs.len()
        ));
    }
    for (block, spec) in blocks.iter().zip(specs) {
        let (len, stated) = expected(spec);
        if block.len() != len {
            return Err(format!(
                "{what} has {} values, expected {stated}",
                block.len()
            ));
        }
        if let Some(pos) = block.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{what} has a non-finite value ({}) at index {pos}",
                block[pos]
            ));
        }
    }
    Ok(())
}

/// `n` values, stated as the number.
fn exactly(n: usize) -> (usize, String) {
    (n, n.to_string())
}

impl Ensemble {
    /// Checks the portfolio parts (`portfolios[i]` for `specs()[i]`: cash
    /// weight, then the position weights).
    pub(crate) fn check_portfolios(&self, portfolios: &[Vec<f32>]) -> Result<(), EnsembleError> {
        check_blocks(
            portfolios,
            self.specs(),
            ("portfolio part", "portfolio part"),
            |s| exactly(s.portfolio_dim()),
        )
        .map_err(|e| {
            EnsembleError::State(format!(
                "portfolio parts do not match the members' inputs (1 + S finite values each): {e}"
            ))
        })
    }

    /// Prepares an hour to come from its older lags: `older[i]` holds, for
    /// `specs()[i]`, lags `L-1` down to 1 of that hour's market part
    /// (`(L-1)*S*F` values, oldest first, as `trader_core::market_state`
    /// lays them out), that is lags `L-2` down to 0 of the hour before.
    ///
    /// # Errors
    /// A wrong number or length of inputs, a non-finite value, or a device error.
    pub fn prepare_hour(&self, older: &[Vec<f32>]) -> Result<PreparedHour, EnsembleError> {
        check_blocks(older, self.specs(), ("older lags", "older lags"), |s| {
            exactly((s.lookback as usize).saturating_sub(1) * lag_width(s))
        })
        .map_err(EnsembleError::State)?;
        let mut groups = Vec::new();
        for unit in self.units()? {
            let spec = &self.specs()[unit.spec_id];
            let p = spec.portfolio_dim();
            let older_dim = spec.state_dim() - p - lag_width(spec);
            let x = prepare_market(&older[unit.spec_id], spec, unit.normalize);
            let group = (|| {
                let (first, _, _) = &unit.layers[0];
                let (n, h, _) = first.dims3()?;
                if older_dim == 0 {
                    // A lookback of one hour: nothing is known ahead.
                    return Tensor::zeros((n, h, 1), first.dtype(), self.device());
                }
                first.narrow(2, p, older_dim)?.matmul(&self.column(x, n)?)
            })()
            .map_err(|e| run_err(&e))?;
            groups.push(group);
        }
        Ok(PreparedHour { groups })
    }

    /// The decision for a prepared hour, given its newest lag (`newest[i]`:
    /// the `S*F` features of the hour's own bars for `specs()[i]`) and the
    /// portfolio parts (`portfolios[i]`: cash weight, then position weights).
    ///
    /// # Errors
    /// A wrong number or length of inputs, a non-finite value, a preparation
    /// of another ensemble, or a device error.
    pub fn infer_prepared(
        &self,
        prepared: &PreparedHour,
        newest: &[Vec<f32>],
        portfolios: &[Vec<f32>],
    ) -> Result<Decision, EnsembleError> {
        check_blocks(newest, self.specs(), ("newest lag", "newest lag"), |s| {
            exactly(lag_width(s))
        })
        .map_err(EnsembleError::State)?;
        self.check_portfolios(portfolios)?;
        let units = self.units()?;
        if units.len() != prepared.groups.len() {
            return Err(EnsembleError::State(format!(
                "an hour prepared for {} member groups, this ensemble runs {}",
                prepared.groups.len(),
                units.len()
            )));
        }
        self.decide_by_unit(&units, |i, unit| {
            let spec = &self.specs()[unit.spec_id];
            let (p, width) = (spec.portfolio_dim(), lag_width(spec));
            let newest_at = spec.state_dim() - width;
            let xp = prepare_portfolio(&portfolios[unit.spec_id]);
            let xn = prepare_market(&newest[unit.spec_id], spec, unit.normalize);
            let (first, _, _) = &unit.layers[0];
            let n = first.dim(0)?;
            let group = &prepared.groups[i];
            let columns = [(0..p, xp.as_slice()), (newest_at..newest_at + width, &xn)];
            if let Some(rows) = run_f32(unit, group, &columns) {
                return Ok(rows);
            }
            let pre = first
                .narrow(2, 0, p)?
                .matmul(&self.column(xp, n)?)?
                .add(
                    &first
                        .narrow(2, newest_at, width)?
                        .matmul(&self.column(xn, n)?)?,
                )?
                .add(group)?;
            run_from_first_layer(unit, &pre)
        })
    }
}

/// A prepared decision of `unit` on the f32 CPU kernels: `prepared`
/// (`[N, H, 1]`) plus each `(columns, values)` product of the first layer,
/// then the remaining layers. `None` when the kernels do not apply (another
/// dtype or device): candle runs it then.
fn run_f32(
    unit: &Unit<'_>,
    prepared: &Tensor,
    columns: &[(std::ops::Range<usize>, &[f32])],
) -> Option<Vec<Vec<f32>>> {
    let (first, _, _) = unit.layers.first()?;
    let n = first.dim(0).ok()?;
    let mut pre = kernel::with_f32(prepared, <[f32]>::to_vec)?;
    for (cols, values) in columns {
        kernel::add_columns(first, n, cols.clone(), values, &mut pre)?;
    }
    kernel::run_from_pre(&unit.layers, n, vec![pre])?.pop()
}

/// Runs a unit from its first layer's product `W x` (`[N, H, 1]`, no bias
/// yet): the bias and activation, then the remaining layers; one row of
/// actions per member.
pub(crate) fn run_from_first_layer(
    unit: &Unit<'_>,
    product: &Tensor,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let (_, b, act) = &unit.layers[0];
    let mut x = activate(&product.broadcast_add(b)?, *act)?;
    for (w, b, act) in &unit.layers[1..] {
        x = activate(&w.matmul(&x)?.broadcast_add(b)?, *act)?;
    }
    x.to_dtype(CandleDType::F32)?.squeeze(2)?.to_vec2::<f32>()
}

impl Ensemble {
    /// `values` as the input column of `n` stacked members (`[n, len, 1]`,
    /// in the weights' dtype): one copy per member, as candle's batched
    /// matmul reads it.
    pub(crate) fn column(&self, values: Vec<f32>, n: usize) -> candle_core::Result<Tensor> {
        let len = values.len();
        Tensor::from_vec(values, (1, len, 1), self.device())?
            .to_dtype(candle_dtype(self.options().dtype))?
            .broadcast_as((n, len, 1))?
            .contiguous()
    }

    /// A decision from each unit's actions (`unit_rows(i, unit)` for the
    /// i-th of `units`): every member's row in rank order, aggregated.
    pub(crate) fn decide_by_unit(
        &self,
        units: &[Unit<'_>],
        mut unit_rows: impl FnMut(usize, &Unit<'_>) -> candle_core::Result<Vec<Vec<f32>>>,
    ) -> Result<Decision, EnsembleError> {
        let mut rows = vec![Vec::new(); self.members().len()];
        for (i, unit) in units.iter().enumerate() {
            let out = unit_rows(i, unit).map_err(|e| run_err(&e))?;
            for (idx, row) in unit.member_idx.iter().zip(out) {
                rows[*idx] = row;
            }
        }
        let aggregate = aggregate(&rows, self.options().aggregate);
        Ok(Decision {
            members: rows,
            aggregate,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use trader_core::{Aggregate, ComputeDevice, DType};

    use super::*;
    use crate::{EnsembleCatalog, ForwardMode, LoadOptions};

    fn fixture(mode: ForwardMode, dtype: DType) -> Ensemble {
        let catalog = EnsembleCatalog::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixture-small"),
        )
        .unwrap();
        let options = LoadOptions {
            top_n: 3,
            dtype,
            device: ComputeDevice::Cpu,
            aggregate: Aggregate::Mean,
            mode,
        };
        Ensemble::load(&catalog, options).unwrap()
    }

    /// A state with every value different (and some clipped by the normalisation).
    fn state(spec: &InputSpec) -> Vec<f32> {
        (0..spec.state_dim())
            .map(|i| ((i as f32) * 0.37).sin() * if i % 11 == 0 { 40.0 } else { 1.5 })
            .collect()
    }

    /// (portfolio, older lags, newest lag) of a whole state.
    fn split(spec: &InputSpec, state: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let p = spec.portfolio_dim();
        let newest_at = spec.state_dim() - lag_width(spec);
        (
            state[..p].to_vec(),
            state[p..newest_at].to_vec(),
            state[newest_at..].to_vec(),
        )
    }

    #[test]
    fn a_prepared_hour_decides_as_the_whole_pass_does() {
        for (mode, dtype, tolerance) in [
            (ForwardMode::Stacked, DType::F32, 1e-5),
            (ForwardMode::Sequential, DType::F32, 1e-5),
            (ForwardMode::Stacked, DType::F16, 2e-2),
        ] {
            let ensemble = fixture(mode, dtype);
            let spec = ensemble.specs()[0].clone();
            let whole_state = state(&spec);
            let (portfolio, older, newest) = split(&spec, &whole_state);
            let whole = ensemble.infer(&[whole_state]).unwrap();
            let prepared = ensemble.prepare_hour(&[older]).unwrap();
            let fast = ensemble
                .infer_prepared(&prepared, &[newest], &[portfolio])
                .unwrap();
            assert_eq!(whole.members.len(), 3);
            for (a, b) in whole
                .members
                .iter()
                .flatten()
                .zip(fast.members.iter().flatten())
            {
                assert!((a - b).abs() <= tolerance, "{mode:?} {dtype:?}: {a} vs {b}");
            }
            for (a, b) in whole.aggregate.iter().zip(&fast.aggregate) {
                assert!((a - b).abs() <= tolerance, "{mode:?} {dtype:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_different_newest_lag_changes_the_decision() {
        let ensemble = fixture(ForwardMode::Stacked, DType::F32);
        let spec = ensemble.specs()[0].clone();
        let (portfolio, older, newest) = split(&spec, &state(&spec));
        let prepared = ensemble.prepare_hour(&[older]).unwrap();
        let a = ensemble
            .infer_prepared(
                &prepared,
                std::slice::from_ref(&newest),
                std::slice::from_ref(&portfolio),
            )
            .unwrap();
        let shifted: Vec<f32> = newest.iter().map(|v| v + 0.5).collect();
        let b = ensemble
            .infer_prepared(&prepared, &[shifted], &[portfolio])
            .unwrap();
        assert_ne!(a.members, b.members);
    }

    #[test]
    fn wrong_inputs_are_refused_with_what_is_wrong() {
        let ensemble = fixture(ForwardMode::Stacked, DType::F32);
        let spec = ensemble.specs()[0].clone();
        let (portfolio, older, newest) = split(&spec, &state(&spec));
        let err = ensemble.prepare_hour(&[older[1..].to_vec()]).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "older lags has {} values, expected {}",
                older.len() - 1,
                older.len()
            )),
            "{err}"
        );
        let err = ensemble.prepare_hour(&[]).unwrap_err();
        assert!(
            err.to_string().contains("0 older lags given for 1"),
            "{err}"
        );
        let prepared = ensemble.prepare_hour(&[older]).unwrap();
        let mut bad = newest.clone();
        bad[4] = f32::NAN;
        let err = ensemble
            .infer_prepared(&prepared, &[bad], std::slice::from_ref(&portfolio))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("newest lag has a non-finite value (NaN) at index 4"),
            "{err}"
        );
        let err = ensemble
            .infer_prepared(
                &prepared,
                std::slice::from_ref(&newest),
                &[portfolio[1..].to_vec()],
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("portfolio parts do not match"),
            "{err}"
        );
        // Prepared by an ensemble that runs its members apart: not this one's.
        let sequential = fixture(ForwardMode::Sequential, DType::F32);
        let (_, older, _) = split(&spec, &state(&spec));
        let theirs = sequential.prepare_hour(&[older]).unwrap();
        let err = ensemble
            .infer_prepared(&theirs, &[newest], &[portfolio])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("prepared for 3 member groups, this ensemble runs 1"),
            "{err}"
        );
    }
}
