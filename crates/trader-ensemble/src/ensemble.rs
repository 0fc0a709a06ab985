//! A loaded ensemble: its members in rank order, optionally stacked by
//! architecture, and the decision for a state vector.

use candle_core::{DType as CandleDType, Device, Tensor};
use serde::Serialize;
use trader_core::{Aggregate, ComputeDevice, DType, Symbol};

use crate::aggregate::aggregate;
use crate::forward::{InputSpec, Unit, prepare, run_err};
use crate::kernel;
use crate::manifest::{Activation, Normalize};
use crate::model::{LoadedMember, Slot, Slots, activate, candle_dtype, load_member};
use crate::{EnsembleCatalog, EnsembleError, EnsembleVersion, MemberSummary};

/// How the members are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// One member after the other.
    Sequential,
    /// Members of one architecture stacked into [N, out, in], one batched
    /// matmul per layer.
    #[default]
    Stacked,
}

impl ForwardMode {
    /// The faster mode for `dtype`, as measured (BENCHMARKS.md): stacked for
    /// f32 and f16 (faster median and p99 at 5-10 members of the reference
    /// size); sequential for bf16, whose CPU matmul in candle 0.11 goes through
    /// f32 copies of the weights, so a stacked group would copy all of them.
    #[must_use]
    pub fn default_for(dtype: DType) -> Self {
        match dtype {
            DType::F32 | DType::F16 => ForwardMode::Stacked,
            DType::Bf16 => ForwardMode::Sequential,
        }
    }
}

/// What to load and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub top_n: usize,
    pub dtype: DType,
    pub device: ComputeDevice,
    pub aggregate: Aggregate,
    pub mode: ForwardMode,
}

/// The output of one decision: every member's actions (rank order) and the aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub members: Vec<Vec<f32>>,
    pub aggregate: Vec<f32>,
}

struct StackedGroup {
    /// Indices into `members` (rank order).
    member_idx: Vec<usize>,
    spec_id: usize,
    normalize: Option<Normalize>,
    layers: Vec<(Tensor, Tensor, Activation)>,
}

/// A loaded ensemble.
pub struct Ensemble {
    members: Vec<LoadedMember>,
    spec_of_member: Vec<usize>,
    specs: Vec<InputSpec>,
    groups: Vec<StackedGroup>,
    options: LoadOptions,
    device: Device,
    version: EnsembleVersion,
}

/// The candle device for a profile's device setting.
///
/// # Errors
/// `cuda` asked of a build without the `cuda` feature, or no usable GPU.
pub fn candle_device(device: ComputeDevice) -> Result<Device, EnsembleError> {
    match device {
        ComputeDevice::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        ComputeDevice::Cuda => {
            Device::new_cuda(0).map_err(|e| EnsembleError::Device(e.to_string()))
        }
        #[cfg(not(feature = "cuda"))]
        ComputeDevice::Cuda => Err(EnsembleError::Device(
            "device = \"cuda\" but this trader was built without the `cuda` feature \
             (rebuild with `--features cuda`, or use device = \"cpu\")"
                .to_owned(),
        )),
    }
}

impl Ensemble {
    /// Loads the best `top_n` members of `catalog`, one at a time, each file
    /// read in one pass (in f32 on the CPU straight into the stacked weights).
    ///
    /// # Errors
    /// Any member error (naming the member and the tensor or key), members that
    /// trade different symbols, or an unusable device.
    pub fn load(catalog: &EnsembleCatalog, options: LoadOptions) -> Result<Self, EnsembleError> {
        let device = candle_device(options.device)?;
        let summaries = catalog.select(options.top_n)?;
        let mut members = Vec::with_capacity(summaries.len());
        let mut specs: Vec<InputSpec> = Vec::new();
        let mut spec_of_member = Vec::with_capacity(summaries.len());
        for summary in &summaries {
            if let Some(first) = summaries.first()
                && summary.params.symbols != first.params.symbols
            {
                return Err(EnsembleError::Invalid {
                    path: summary.dir.join("params.json"),
                    message: format!(
                        "member trades {:?} but {} trades {:?}; an ensemble's members must trade the same symbols in the same order",
                        summary.params.symbols, first.name, first.params.symbols
                    ),
                });
            }
            let spec = InputSpec {
                symbols: summary.params.symbols.clone(),
                lookback: summary.params.lookback,
                features: summary.params.features.clone(),
            };
            let id = specs.iter().position(|s| *s == spec).unwrap_or_else(|| {
                specs.push(spec);
                specs.len() - 1
            });
            spec_of_member.push(id);
        }
        // On the CPU in f32 and f16 a stacked group's weights are filled in
        // place: each member's file is read straight into its slot, so
        // loading holds nothing beside the weights but the read buffers.
        let in_place = crate::model::loads_in_place(options.dtype, options.device);
        let (mut groups, mut buffers) = if options.mode == ForwardMode::Stacked {
            plan_groups(
                &summaries,
                &spec_of_member,
                options.dtype,
                &device,
                in_place,
            )?
        } else {
            (Vec::new(), Vec::new())
        };
        for (i, summary) in summaries.iter().enumerate() {
            let place = groups.iter().enumerate().find_map(|(g, group)| {
                group
                    .member_idx
                    .iter()
                    .position(|&m| m == i)
                    .map(|slot| (g, slot))
            });
            let slots = match place {
                Some((g, slot)) if in_place => buffers
                    .get_mut(g)
                    .map(|layers| member_slots(layers, slot))
                    .unwrap_or_default(),
                _ => Slots::new(),
            };
            let mut member = load_member(summary, options.dtype, &device, slots)?;
            if let Some((g, slot)) = place {
                // Not loaded in place: copy into the group's preallocated
                // [N, ...] tensors and keep one copy only (the peak stays at
                // the weights plus one member).
                for (layer, (w, b, _)) in member.layers.iter().zip(&groups[g].layers) {
                    layer
                        .weight
                        .unsqueeze(0)
                        .and_then(|src| w.slice_set(&src, 0, slot))
                        .and_then(|()| layer.bias.unsqueeze(0))
                        .and_then(|src| b.slice_set(&src, 0, slot))
                        .map_err(|e| run_err(&e))?;
                }
                member.layers = Vec::new();
            }
            members.push(member);
            tracing::debug!(member = %summary.name, params = summary.parameter_count(), "member loaded");
        }
        tensors_from_buffers(&mut groups, buffers, &device)?;
        groups.retain(|g| !g.member_idx.is_empty());
        let version = EnsembleVersion::of(summaries.iter().zip(&members).map(|(s, m)| {
            (
                s.name.as_str(),
                s.score,
                &s.params_digest,
                &m.weights_digest,
            )
        }));
        Ok(Ensemble {
            members,
            spec_of_member,
            specs,
            groups,
            options,
            device,
            version,
        })
    }

    /// The members in rank order.
    #[must_use]
    pub fn members(&self) -> &[LoadedMember] {
        &self.members
    }

    /// The distinct input specs; `infer` takes one state per spec, in this order.
    #[must_use]
    pub fn specs(&self) -> &[InputSpec] {
        &self.specs
    }

    /// The symbols every member trades, in output order.
    #[must_use]
    pub fn symbols(&self) -> &[Symbol] {
        self.specs.first().map_or(&[], |s| s.symbols.as_slice())
    }

    /// Which members it holds: a content hash of their files, in rank order.
    #[must_use]
    pub fn version(&self) -> &EnsembleVersion {
        &self.version
    }

    /// Bytes of its weights at its dtype (one copy; on its device).
    #[must_use]
    pub fn weight_bytes(&self) -> u64 {
        self.members.iter().map(|m| m.parameter_count).sum::<u64>()
            * self.options.dtype.size_in_bytes()
    }

    /// The options it was loaded with.
    #[must_use]
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The members as they run: the stacked groups, or in sequential mode
    /// each member alone (its tensors viewed as a group of one).
    pub(crate) fn units(&self) -> Result<Vec<Unit<'_>>, EnsembleError> {
        Ok(match self.options.mode {
            ForwardMode::Stacked => self
                .groups
                .iter()
                .map(|g| Unit {
                    member_idx: g.member_idx.clone(),
                    spec_id: g.spec_id,
                    normalize: g.normalize.as_ref(),
                    layers: g.layers.clone(),
                })
                .collect(),
            ForwardMode::Sequential => self
                .members
                .iter()
                .zip(&self.spec_of_member)
                .enumerate()
                .map(|(i, (m, &spec_id))| {
                    Ok(Unit {
                        member_idx: vec![i],
                        spec_id,
                        normalize: m.params.normalize.as_ref(),
                        layers: m
                            .layers
                            .iter()
                            .map(|l| {
                                Ok((
                                    l.weight.unsqueeze(0).map_err(|e| run_err(&e))?,
                                    l.bias.unsqueeze(0).map_err(|e| run_err(&e))?,
                                    l.activation,
                                ))
                            })
                            .collect::<Result<_, EnsembleError>>()?,
                    })
                })
                .collect::<Result<_, EnsembleError>>()?,
        })
    }

    /// Runs every member on its state and aggregates. `states[i]` is the state
    /// vector for `specs()[i]`.
    ///
    /// # Errors
    /// A wrong number of states, a state of the wrong length or with a
    /// non-finite value, or a device error.
    pub fn infer(&self, states: &[Vec<f32>]) -> Result<Decision, EnsembleError> {
        if states.len() != self.specs.len() {
            return Err(EnsembleError::State(format!(
                "{} state vectors given for {} distinct member inputs",
                states.len(),
                self.specs.len()
            )));
        }
        for (state, spec) in states.iter().zip(&self.specs) {
            if state.len() != spec.state_dim() {
                return Err(EnsembleError::State(format!(
                    "state vector has {} values but the members expect 1 + S + L*S*F = 1 + {s} + {l}*{s}*{f} = {}",
                    state.len(),
                    spec.state_dim(),
                    s = spec.symbols.len(),
                    l = spec.lookback,
                    f = spec.features.len()
                )));
            }
            if let Some(pos) = state.iter().position(|v| !v.is_finite()) {
                return Err(EnsembleError::State(format!(
                    "state vector has a non-finite value ({}) at index {pos}",
                    state[pos]
                )));
            }
        }
        let rows = match self.options.mode {
            ForwardMode::Sequential => self.forward_sequential(states)?,
            ForwardMode::Stacked => self.forward_stacked(states)?,
        };
        let aggregate = aggregate(&rows, self.options.aggregate);
        Ok(Decision {
            members: rows,
            aggregate,
        })
    }

    fn input(
        &self,
        state: &[f32],
        spec_id: usize,
        normalize: Option<&Normalize>,
    ) -> Result<Tensor, EnsembleError> {
        let prepared = prepare(state, &self.specs[spec_id], normalize);
        Tensor::from_vec(prepared, (state.len(), 1), &self.device)
            .and_then(|t| t.to_dtype(candle_dtype(self.options.dtype)))
            .map_err(|e| run_err(&e))
    }

    fn forward_sequential(&self, states: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EnsembleError> {
        self.members
            .iter()
            .zip(&self.spec_of_member)
            .map(|(m, &spec_id)| {
                let x = self.input(&states[spec_id], spec_id, m.params.normalize.as_ref())?;
                m.forward(&x)
                    .and_then(|y| y.to_dtype(CandleDType::F32))
                    .and_then(|y| y.flatten_all())
                    .and_then(|y| y.to_vec1::<f32>())
                    .map_err(|e| run_err(&e))
            })
            .collect()
    }

    fn forward_stacked(&self, states: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EnsembleError> {
        let mut rows = vec![Vec::new(); self.members.len()];
        for g in &self.groups {
            let n = g.member_idx.len();
            let prepared = prepare(
                &states[g.spec_id],
                &self.specs[g.spec_id],
                g.normalize.as_ref(),
            );
            let out = match kernel::run_whole(&g.layers, n, &prepared) {
                Some(out) => out,
                None => self.forward_group_candle(g, prepared)?,
            };
            for (idx, row) in g.member_idx.iter().zip(out) {
                rows[*idx] = row;
            }
        }
        Ok(rows)
    }

    /// A stacked group's pass through candle (the dtypes and devices the f32
    /// CPU kernels do not run), on its prepared state.
    fn forward_group_candle(
        &self,
        g: &StackedGroup,
        prepared: Vec<f32>,
    ) -> Result<Vec<Vec<f32>>, EnsembleError> {
        let (n, dim) = (g.member_idx.len(), prepared.len());
        (|| {
            let mut x = Tensor::from_vec(prepared, (1, dim, 1), &self.device)?
                .to_dtype(candle_dtype(self.options.dtype))?
                .broadcast_as((n, dim, 1))?
                .contiguous()?;
            for (w, b, act) in &g.layers {
                x = activate(&w.matmul(&x)?.broadcast_add(b)?, *act)?;
            }
            x.to_dtype(CandleDType::F32)?.squeeze(2)?.to_vec2::<f32>()
        })()
        .map_err(|e| run_err(&e))
    }
}

/// Values of a stacked layer being filled, in the group's dtype.
enum Values {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl Values {
    fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F16 => Values::F16(vec![half::f16::ZERO; len]),
            DType::F32 | DType::Bf16 => Values::F32(vec![0.0; len]),
        }
    }

    /// The `slot`-th run of `per` values.
    fn slot(&mut self, per: usize, slot: usize) -> Option<Slot<'_>> {
        match self {
            Values::F32(v) => v.chunks_mut(per.max(1)).nth(slot).map(Slot::F32),
            Values::F16(v) => v.chunks_mut(per.max(1)).nth(slot).map(Slot::F16),
        }
    }

    fn into_tensor(
        self,
        shape: (usize, usize, usize),
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match self {
            Values::F32(v) => Tensor::from_vec(v, shape, device),
            Values::F16(v) => Tensor::from_vec(v, shape, device),
        }
    }
}

/// One layer of a stacked group filled in place (CPU): `[N, out, in]`
/// weights and `[N, out]` biases, member after member.
struct LayerBuffer {
    weights: Values,
    biases: Values,
    outputs: usize,
    inputs: usize,
    activation: Activation,
}

/// Makes the tensors of groups filled in place from their buffers (no copy).
fn tensors_from_buffers(
    groups: &mut [StackedGroup],
    buffers: Vec<Vec<LayerBuffer>>,
    device: &Device,
) -> Result<(), EnsembleError> {
    for (group, layers) in groups.iter_mut().zip(buffers) {
        let n = group.member_idx.len();
        for buffer in layers {
            let weight = buffer
                .weights
                .into_tensor((n, buffer.outputs, buffer.inputs), device);
            let bias = buffer.biases.into_tensor((n, buffer.outputs, 1), device);
            group.layers.push((
                weight.map_err(|e| run_err(&e))?,
                bias.map_err(|e| run_err(&e))?,
                buffer.activation,
            ));
        }
    }
    Ok(())
}

/// The places of member `slot` of a group in its layers' buffers, by tensor
/// name (`net.{2i}.weight`, `net.{2i}.bias`).
fn member_slots(layers: &mut [LayerBuffer], slot: usize) -> Slots<'_> {
    let mut slots = Slots::new();
    for (i, layer) in layers.iter_mut().enumerate() {
        if let Some(w) = layer.weights.slot(layer.outputs * layer.inputs, slot) {
            slots.insert(format!("net.{}.weight", 2 * i), w);
        }
        if let Some(b) = layer.biases.slot(layer.outputs, slot) {
            slots.insert(format!("net.{}.bias", 2 * i), b);
        }
    }
    slots
}

/// Groups members by (input spec, normalisation, architecture), from their
/// manifests, and allocates each group's stacked weights [N, out, in] and
/// biases [N, out, 1], to be filled as the members load; with `in_place`,
/// as f32 buffers instead, which the members' files are read into (the
/// tensors are made from them once every member has loaded).
fn plan_groups(
    summaries: &[MemberSummary],
    spec_of_member: &[usize],
    dtype: DType,
    device: &Device,
    in_place: bool,
) -> Result<(Vec<StackedGroup>, Vec<Vec<LayerBuffer>>), EnsembleError> {
    let mut groups: Vec<StackedGroup> = Vec::new();
    let mut keys = Vec::new();
    for (i, m) in summaries.iter().enumerate() {
        let key = (
            spec_of_member[i],
            m.params.layers.clone(),
            m.params.normalize.clone(),
        );
        if let Some(g) = keys.iter().position(|k| *k == key) {
            groups[g].member_idx.push(i);
        } else {
            keys.push(key);
            groups.push(StackedGroup {
                member_idx: vec![i],
                spec_id: spec_of_member[i],
                normalize: m.params.normalize.clone(),
                layers: Vec::new(),
            });
        }
    }
    let mut buffers = Vec::new();
    for (g, (_, layers, _)) in groups.iter_mut().zip(&keys) {
        let n = g.member_idx.len();
        if in_place {
            buffers.push(
                layers
                    .iter()
                    .map(|l| LayerBuffer {
                        weights: Values::zeros(dtype, n * l.outputs * l.inputs),
                        biases: Values::zeros(dtype, n * l.outputs),
                        outputs: l.outputs,
                        inputs: l.inputs,
                        activation: l.activation,
                    })
                    .collect(),
            );
            continue;
        }
        for l in layers {
            let w = Tensor::zeros((n, l.outputs, l.inputs), candle_dtype(dtype), device);
            let b = Tensor::zeros((n, l.outputs, 1), candle_dtype(dtype), device);
            g.layers.push((
                w.map_err(|e| run_err(&e))?,
                b.map_err(|e| run_err(&e))?,
                l.activation,
            ));
        }
    }
    Ok((groups, buffers))
}
