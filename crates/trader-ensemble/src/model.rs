//! Loaded members and the forward pass, on candle.

use std::path::Path;

use candle_core::{DType as CandleDType, Device, Tensor};
use trader_core::DType;

use crate::manifest::{Activation, MemberParams};
use crate::{EnsembleError, MemberSummary};

/// One linear layer, its weight held as stored ([out, in]): the forward pass
/// computes `W x` on a column, so an f32 weight is used in place, without a
/// transposed copy (which would add one member's size to the loading peak).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    pub(crate) activation: Activation,
}

/// A member with its weights on the device.
#[derive(Debug, Clone)]
pub struct LoadedMember {
    pub name: String,
    pub score: f64,
    pub params: MemberParams,
    pub parameter_count: u64,
    pub file_bytes: u64,
    /// SHA-256 of `actor.safetensors` as loaded.
    pub(crate) weights_digest: [u8; 32],
    pub(crate) layers: Vec<Layer>,
}

pub(crate) fn candle_dtype(dtype: DType) -> CandleDType {
    match dtype {
        DType::F32 => CandleDType::F32,
        DType::F16 => CandleDType::F16,
        DType::Bf16 => CandleDType::BF16,
    }
}

fn tensor_err(path: &Path, tensor: &str, e: &candle_core::Error) -> EnsembleError {
    EnsembleError::Invalid {
        path: path.to_path_buf(),
        message: format!("tensor {tensor}: {e}"),
    }
}

/// Loads one member: reads the file, copies the tensors out (candle copies
/// them), drops the file buffer, checks every value is finite, converts to
/// `dtype` and moves to `device`.
pub(crate) fn load_member(
    summary: &MemberSummary,
    dtype: DType,
    device: &Device,
) -> Result<LoadedMember, EnsembleError> {
    let path = &summary.header.path;
    let (mut tensors, weights_digest) = {
        let bytes = fs_err::read(path).map_err(|source| EnsembleError::Read {
            path: path.clone(),
            source,
        })?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            EnsembleError::Header {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        (tensors, crate::version::sha256(&bytes))
        // `bytes` is dropped here, before the next member is read.
    };
    let mut layers = Vec::with_capacity(summary.params.layers.len());
    for (i, spec) in summary.params.layers.iter().enumerate() {
        let mut take = |suffix: &str| -> Result<Tensor, EnsembleError> {
            let name = format!("net.{}.{suffix}", 2 * i);
            let t = tensors
                .remove(&name)
                .ok_or_else(|| EnsembleError::Invalid {
                    path: path.clone(),
                    message: format!("tensor {name} is missing"),
                })?;
            let values = t
                .to_dtype(CandleDType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| tensor_err(path, &name, &e))?;
            if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
                return Err(EnsembleError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "tensor {name} has a non-finite value ({}) at flat index {pos}",
                        values[pos]
                    ),
                });
            }
            Ok(t)
        };
        let weight = take("weight")?;
        let bias = take("bias")?;
        let name = format!("net.{}", 2 * i);
        let convert = |t: Tensor| {
            t.to_dtype(candle_dtype(dtype))
                .and_then(|t| t.contiguous())
                .and_then(|t| t.to_device(device))
                .map_err(|e| tensor_err(path, &name, &e))
        };
        layers.push(Layer {
            weight: convert(weight)?,
            bias: convert(
                bias.reshape((spec.outputs, 1))
                    .map_err(|e| tensor_err(path, &name, &e))?,
            )?,
            activation: spec.activation,
        });
    }
    Ok(LoadedMember {
        name: summary.name.clone(),
        score: summary.score,
        params: summary.params.clone(),
        parameter_count: summary.parameter_count(),
        file_bytes: summary.header.file_bytes,
        weights_digest,
        layers,
    })
}

pub(crate) fn activate(x: &Tensor, activation: Activation) -> candle_core::Result<Tensor> {
    match activation {
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
        Activation::None => Ok(x.clone()),
    }
}

impl LoadedMember {
    /// Runs the layers on `x` ([in, rows]: one column per state, already in
    /// the weights' dtype); returns [outputs, rows].
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = activate(
                &layer.weight.matmul(&x)?.broadcast_add(&layer.bias)?,
                layer.activation,
            )?;
        }
        Ok(x)
    }
}
