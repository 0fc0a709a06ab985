//! Training one actor and writing it as a member directory.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use trader_core::Symbol;
use trader_ensemble::{Activation, LayerSpec, MemberParams, Normalize};

use crate::{Dataset, HyperParams};

/// A training or writing failure.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("training diverged: loss {loss} after epoch {epoch}")]
    Diverged { loss: f32, epoch: u32 },
}

/// A trained actor: its layers (PyTorch `nn.Sequential` names), its
/// manifest without a score, and the loss after each epoch.
pub struct TrainedMember {
    pub params: MemberParams,
    pub tensors: HashMap<String, Tensor>,
    pub epoch_losses: Vec<f32>,
}

/// `Linear` as PyTorch initialises it: weight and bias uniform in
/// +-1/sqrt(inputs), from the trial's generator.
fn linear(
    rng: &mut fastrand::Rng,
    inputs: usize,
    outputs: usize,
) -> candle_core::Result<(Var, Var)> {
    let bound = 1.0 / (inputs as f32).sqrt();
    let mut uniform =
        |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * bound).collect() };
    let w = Tensor::from_vec(uniform(inputs * outputs), (outputs, inputs), &Device::Cpu)?;
    let b = Tensor::from_vec(uniform(outputs), outputs, &Device::Cpu)?;
    Ok((Var::from_tensor(&w)?, Var::from_tensor(&b)?))
}

fn forward(layers: &[(Var, Var, Activation)], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for (w, b, act) in layers {
        x = x
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        x = match act {
            Activation::Relu => x.relu()?,
            Activation::Tanh => x.tanh()?,
            Activation::None => x,
        };
    }
    Ok(x)
}

/// Trains the actor of `hp` on `data` (MSE towards the targets, AdamW,
/// shuffled minibatches, all from the trial's seed).
///
/// # Errors
/// A candle error, or a loss that is not finite.
pub fn train_member(
    data: &Dataset,
    hp: &HyperParams,
    symbols: &[Symbol],
) -> Result<TrainedMember, TrainError> {
    let mut rng = fastrand::Rng::with_seed(hp.seed);
    let mut sizes = vec![data.state_dim];
    sizes.extend(&hp.hidden);
    sizes.push(data.outputs);
    let mut layers = Vec::new();
    let mut specs = Vec::new();
    for (i, pair) in sizes.windows(2).enumerate() {
        let (w, b) = linear(&mut rng, pair[0], pair[1])?;
        let activation = if i + 2 == sizes.len() {
            Activation::Tanh
        } else {
            Activation::Relu
        };
        layers.push((w, b, activation));
        specs.push(LayerSpec {
            inputs: pair[0],
            outputs: pair[1],
            activation,
        });
    }
    let vars: Vec<Var> = layers
        .iter()
        .flat_map(|(w, b, _)| [w.clone(), b.clone()])
        .collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: hp.learning_rate,
            weight_decay: hp.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let x_all = Tensor::from_vec(
        data.inputs.clone(),
        (data.rows, data.state_dim),
        &Device::Cpu,
    )?;
    let y_all = Tensor::from_vec(
        data.targets.clone(),
        (data.rows, data.outputs),
        &Device::Cpu,
    )?;
    let mut order: Vec<u32> = (0..data.rows as u32).collect();
    let mut epoch_losses = Vec::new();
    for epoch in 0..hp.epochs {
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0f32, 0u32);
        for chunk in order.chunks(hp.batch_size.max(1)) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?;
            let x = x_all.index_select(&idx, 0)?;
            let y = y_all.index_select(&idx, 0)?;
            let loss = forward(&layers, &x)?.sub(&y)?.sqr()?.mean_all()?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let mean = total / batches.max(1) as f32;
        if !mean.is_finite() {
            return Err(TrainError::Diverged { loss: mean, epoch });
        }
        epoch_losses.push(mean);
    }
    let mut tensors = HashMap::new();
    for (i, (w, b, _)) in layers.iter().enumerate() {
        tensors.insert(
            format!("net.{}.weight", 2 * i),
            w.as_tensor().to_dtype(DType::F32)?,
        );
        tensors.insert(
            format!("net.{}.bias", 2 * i),
            b.as_tensor().to_dtype(DType::F32)?,
        );
    }
    let params = MemberParams {
        format: 1,
        symbols: symbols.to_vec(),
        lookback: hp.lookback,
        features: hp.features.clone(),
        layers: specs,
        normalize: Some(Normalize {
            mean: data.mean.clone(),
            std: data.std.clone(),
        }),
        score: None,
        hparams: serde_json::to_value(hp).unwrap_or_default(),
    };
    Ok(TrainedMember {
        params,
        tensors,
        epoch_losses,
    })
}

/// Writes `member` into `dir` (created): actor.safetensors, then params.json
/// with `score`.
///
/// # Errors
/// A file that cannot be written.
pub fn write_member(
    dir: &Path,
    member: &TrainedMember,
    score: Option<f64>,
) -> Result<(), TrainError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TrainError::Io { path, source }
    };
    fs_err::create_dir_all(dir).map_err(io(dir))?;
    candle_core::safetensors::save(&member.tensors, dir.join("actor.safetensors"))?;
    let mut params = member.params.clone();
    params.score = score;
    let json = serde_json::to_string_pretty(&params).unwrap_or_default() + "\n";
    let path = dir.join("params.json");
    fs_err::write(&path, json).map_err(io(&path))?;
    Ok(())
}
