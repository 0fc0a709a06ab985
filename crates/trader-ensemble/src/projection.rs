//! The batched first layer for backtests.
//!
//! A member's first layer is linear in the state, `W x + b` with
//! `W = [W_p | W_m]` and `x = [portfolio | market]`, and the market part of
//! the state does not depend on what the policy did. So for a block of hours
//! known in advance, `W_m x_m` is computed for every hour and every member in
//! ONE matmul per group (`[hours, D_m] x [D_m, N*H]`, compute-bound), and each
//! hour then only adds the small portfolio product `W_p x_p`, the bias, and
//! runs the remaining layers ([`Ensemble::infer_projected`]).
//!
//! The sum is split in two, so actions differ from [`Ensemble::infer`] by
//! float rounding (about 1e-7 relative in f32), not more.

use candle_core::Tensor;

use crate::ensemble::{Decision, Ensemble};
use crate::forward::{Unit, prepare_market, prepare_portfolio, run_err};
use crate::kernel;
use crate::model::candle_dtype;
use crate::prepared::{check_blocks, run_from_first_layer};
use crate::{EnsembleError, aggregate};

/// One group's share of a projection.
struct ProjectedGroup {
    /// `[rows, N*H]`: row r holds every member's `W_m x_m` for hour r.
    market: Tensor,
    /// `[N, H, P]`: the portfolio columns of every member's first layer.
    portfolio_weights: Tensor,
}

impl ProjectedGroup {
    /// `unit`'s member rows for each `(row, portfolio part)` of `hours`, on
    /// the f32 CPU kernels, all hours in one pass over each layer's
    /// weights; `None` when they do not apply (another dtype or device).
    fn run_f32(&self, unit: &Unit<'_>, hours: &[(usize, Vec<f32>)]) -> Option<Vec<Vec<Vec<f32>>>> {
        let (n, h, p) = self.portfolio_weights.dims3().ok()?;
        let mut pres = Vec::with_capacity(hours.len());
        for (row, portfolio) in hours {
            let mut pre = kernel::with_f32(&self.market, |m| {
                m.get(row * n * h..(row + 1) * n * h).map(<[f32]>::to_vec)
            })??;
            kernel::add_columns(&self.portfolio_weights, n, 0..p, portfolio, &mut pre)?;
            pres.push(pre);
        }
        kernel::run_from_pre(&unit.layers, n, pres)
    }

    /// `unit`'s member rows for hour `row` through candle.
    fn run_candle(
        &self,
        ensemble: &Ensemble,
        unit: &Unit<'_>,
        row: usize,
        portfolio: Vec<f32>,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let (n, h, _) = self.portfolio_weights.dims3()?;
        let market = self.market.narrow(0, row, 1)?.reshape((n, h, 1))?;
        let product = self
            .portfolio_weights
            .matmul(&ensemble.column(portfolio, n)?)?
            .add(&market)?;
        run_from_first_layer(unit, &product)
    }
}

/// The market part of every member's first layer for `rows` hours.
pub struct MarketProjection {
    groups: Vec<ProjectedGroup>,
    rows: usize,
}

impl std::fmt::Debug for MarketProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketProjection")
            .field("groups", &self.groups.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl MarketProjection {
    /// Hours (rows) it holds.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl Ensemble {
    /// Computes the market part of the first layer for `rows` hours.
    /// `markets[i]` holds, for `specs()[i]`, the `rows` market parts
    /// (`L*S*F` values each, as `trader_core::market_state` returns them)
    /// one after the other.
    ///
    /// # Errors
    /// A wrong number or length of inputs, a non-finite value, or a device error.
    pub fn project_market(
        &self,
        markets: &[Vec<f32>],
        rows: usize,
    ) -> Result<MarketProjection, EnsembleError> {
        check_blocks(
            markets,
            self.specs(),
            ("market blocks", "market block"),
            |spec| {
                let dim = spec.state_dim() - spec.portfolio_dim();
                (rows * dim, format!("{rows} hours x {dim}"))
            },
        )
        .map_err(EnsembleError::State)?;
        let dtype = candle_dtype(self.options().dtype);
        let mut groups = Vec::new();
        for unit in self.units()? {
            let spec = &self.specs()[unit.spec_id];
            let (p, dm) = (
                spec.portfolio_dim(),
                spec.state_dim() - spec.portfolio_dim(),
            );
            let prepared = prepare_market(&markets[unit.spec_id], spec, unit.normalize);
            let group = (|| {
                let (first, _, _) = &unit.layers[0];
                let (n, h, _) = first.dims3()?;
                let x = Tensor::from_vec(prepared, (rows, dm), self.device())?.to_dtype(dtype)?;
                let wm = first.narrow(2, p, dm)?.contiguous()?.reshape((n * h, dm))?;
                let market = x.matmul(&wm.t()?)?;
                let portfolio_weights = first.narrow(2, 0, p)?.contiguous()?;
                Ok::<_, candle_core::Error>(ProjectedGroup {
                    market,
                    portfolio_weights,
                })
            })()
            .map_err(|e| run_err(&e))?;
            groups.push(group);
        }
        Ok(MarketProjection { groups, rows })
    }

    /// The decision for hour `row` of `projection`, given the portfolio part
    /// of each state (`portfolios[i]` for `specs()[i]`: cash weight, then
    /// the position weights).
    ///
    /// # Errors
    /// A row outside the projection, a wrong portfolio, or a device error.
    pub fn infer_projected(
        &self,
        projection: &MarketProjection,
        row: usize,
        portfolios: &[Vec<f32>],
    ) -> Result<Decision, EnsembleError> {
        let mut decisions =
            self.infer_projected_hours(projection, &[(row, portfolios.to_vec())])?;
        decisions
            .pop()
            .ok_or_else(|| EnsembleError::State("no decision for one hour".to_owned()))
    }

    /// The decisions for several hours of `projection` at once: `hours[k]`
    /// is a row and its portfolio parts (as [`Ensemble::infer_projected`]
    /// takes them). On the f32 CPU kernels every layer's weights are read
    /// once for all of them, and each hour's decision is the one
    /// `infer_projected` gives for it alone, bit for bit; otherwise the
    /// hours run one by one.
    ///
    /// # Errors
    /// A row outside the projection, a wrong portfolio, or a device error.
    pub fn infer_projected_hours(
        &self,
        projection: &MarketProjection,
        hours: &[(usize, Vec<Vec<f32>>)],
    ) -> Result<Vec<Decision>, EnsembleError> {
        for (row, portfolios) in hours {
            if *row >= projection.rows {
                return Err(EnsembleError::State(format!(
                    "hour {row} asked of a projection of {} hours",
                    projection.rows
                )));
            }
            self.check_portfolios(portfolios)?;
        }
        let mut rows = vec![vec![Vec::new(); self.members().len()]; hours.len()];
        for (i, unit) in self.units()?.iter().enumerate() {
            let projected = projection.groups.get(i).ok_or_else(|| {
                EnsembleError::State("a projection of another ensemble".to_owned())
            })?;
            let parts: Vec<(usize, Vec<f32>)> = hours
                .iter()
                .map(|(row, p)| (*row, prepare_portfolio(&p[unit.spec_id])))
                .collect();
            let outs = match projected.run_f32(unit, &parts) {
                Some(outs) => outs,
                None => parts
                    .into_iter()
                    .map(|(row, p)| projected.run_candle(self, unit, row, p))
                    .collect::<candle_core::Result<_>>()
                    .map_err(|e| run_err(&e))?,
            };
            for (hour_rows, out) in rows.iter_mut().zip(outs) {
                for (idx, row) in unit.member_idx.iter().zip(out) {
                    hour_rows[*idx] = row;
                }
            }
        }
        Ok(rows
            .into_iter()
            .map(|members| Decision {
                aggregate: aggregate(&members, self.options().aggregate),
                members,
            })
            .collect())
    }
}
