//! Loaded members and the forward pass, on candle.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType as CandleDType, Device, Tensor};
use safetensors::Dtype;
use sha2::{Digest, Sha256};
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

/// Bytes read from a weights file at a time, into the file reader's buffer
/// and the chunk being converted: a load holds these two beside what it
/// builds.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The two read buffers of a load ([`READ_CHUNK_BYTES`] each), in bytes.
pub(crate) const READ_BUFFER_BYTES: u64 = 2 * READ_CHUNK_BYTES as u64;

/// Passes reads through and hashes every byte read (SHA-256).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The first value of a tensor that is not finite: its flat index and value.
type NonFinite = Option<(usize, f64)>;

/// Reads `slot.len()` little-endian values of `B` bytes each, a chunk at a
/// time, into `slot` (a stacked group's place for the tensor: no buffer of
/// the tensor's own), each converted by `convert` as candle converts that
/// dtype pair. Returns the first value whose f32 value (`as_f32`, what the
/// finite check has always looked at) is not finite, with its flat index.
fn read_values_into<T: Copy, O, const B: usize>(
    reader: &mut impl Read,
    slot: &mut [O],
    from_le_bytes: fn([u8; B]) -> T,
    as_f32: fn(T) -> f32,
    convert: fn(T) -> O,
) -> std::io::Result<NonFinite> {
    let per_chunk = READ_CHUNK_BYTES / B;
    let mut chunk = vec![0u8; per_chunk.min(slot.len()) * B];
    let mut bad = None;
    for (n, part) in slot.chunks_mut(per_chunk).enumerate() {
        let bytes = &mut chunk[..part.len() * B];
        reader.read_exact(bytes)?;
        for (k, (v, c)) in part.iter_mut().zip(bytes.chunks_exact(B)).enumerate() {
            let mut one = [0u8; B];
            one.copy_from_slice(c);
            let value = from_le_bytes(one);
            let checked = as_f32(value);
            if bad.is_none() && !checked.is_finite() {
                bad = Some((n * per_chunk + k, f64::from(checked)));
            }
            *v = convert(value);
        }
    }
    Ok(bad)
}

/// Reads a tensor of `shape` into a buffer of its own, as stored (see
/// [`read_values_into`] for the finite check).
fn own_tensor<T: Copy + Default + candle_core::WithDType, const B: usize>(
    reader: &mut impl Read,
    shape: &[usize],
    from_le_bytes: fn([u8; B]) -> T,
    as_f32: fn(T) -> f32,
) -> std::io::Result<(candle_core::Result<Tensor>, NonFinite)> {
    let mut values = vec![T::default(); shape.iter().product()];
    let bad = read_values_into(reader, &mut values, from_le_bytes, as_f32, |x| x)?;
    Ok((Tensor::from_vec(values, shape, &Device::Cpu), bad))
}

/// Whether members load straight into their stacked group's weights (see
/// `Ensemble::load`): on the CPU in f32 or f16, whose default mode is
/// stacked ([`crate::ForwardMode::default_for`]).
pub(crate) fn loads_in_place(dtype: DType, device: trader_core::ComputeDevice) -> bool {
    device == trader_core::ComputeDevice::Cpu && matches!(dtype, DType::F32 | DType::F16)
}

/// A member's place in a stacked group's weights on the CPU, in the
/// group's dtype.
pub(crate) enum Slot<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [half::f16]),
}

impl Slot<'_> {
    fn len(&self) -> usize {
        match self {
            Slot::F32(s) => s.len(),
            Slot::F16(s) => s.len(),
        }
    }
}

/// Places where some tensors of a member are written as they are read (by
/// name), instead of into tensors of their own: its slots in a stacked
/// group on the CPU.
pub(crate) type Slots<'a> = HashMap<String, Slot<'a>>;

/// Reads tensor `name` (`dtype` as stored) into `slot`, converting as
/// candle would; the first non-finite value (as f32) if any.
fn read_into_slot(
    reader: &mut impl Read,
    dtype: Dtype,
    slot: &mut Slot<'_>,
) -> Result<std::io::Result<NonFinite>, Dtype> {
    use half::{bf16, f16};
    #[allow(clippy::cast_possible_truncation)]
    let f64_as_f32 = |x: f64| x as f32;
    Ok(match (dtype, slot) {
        (Dtype::F32, Slot::F32(s)) => read_values_into(reader, s, f32::from_le_bytes, |x| x, |x| x),
        (Dtype::F16, Slot::F32(s)) => {
            read_values_into(reader, s, f16::from_le_bytes, f16::to_f32, f16::to_f32)
        }
        (Dtype::BF16, Slot::F32(s)) => {
            read_values_into(reader, s, bf16::from_le_bytes, bf16::to_f32, bf16::to_f32)
        }
        (Dtype::F64, Slot::F32(s)) => {
            read_values_into(reader, s, f64::from_le_bytes, f64_as_f32, f64_as_f32)
        }
        (Dtype::F32, Slot::F16(s)) => {
            read_values_into(reader, s, f32::from_le_bytes, |x| x, f16::from_f32)
        }
        (Dtype::F16, Slot::F16(s)) => {
            read_values_into(reader, s, f16::from_le_bytes, f16::to_f32, |x| x)
        }
        (Dtype::BF16, Slot::F16(s)) => {
            read_values_into(reader, s, bf16::from_le_bytes, bf16::to_f32, |x| {
                f16::from_f32(x.to_f32())
            })
        }
        (Dtype::F64, Slot::F16(s)) => {
            read_values_into(reader, s, f64::from_le_bytes, f64_as_f32, f16::from_f64)
        }
        (other, _) => return Err(other),
    })
}

/// What [`read_weights`] read: the tensors that had no slot, and the SHA-256
/// of every byte of the file.
type ReadWeights = (HashMap<String, Tensor>, [u8; 32]);

fn unsupported(path: &Path, name: &str, dtype: Dtype) -> EnsembleError {
    EnsembleError::Invalid {
        path: path.to_path_buf(),
        message: format!(
            "tensor {name} is stored as {dtype:?}; weights must be F32, F16, BF16 or F64"
        ),
    }
}

fn non_finite(path: &Path, name: &str, value: f64, pos: usize) -> EnsembleError {
    EnsembleError::Invalid {
        path: path.to_path_buf(),
        message: format!("tensor {name} has a non-finite value ({value}) at flat index {pos}"),
    }
}

/// Reads every tensor of the safetensors file at `path` in one pass, each
/// straight into its slot in `slots` (converted to f32) or, without one, into
/// a buffer of its own (no copy of the whole file is held: a member's load
/// transient is its tensors without slots), refusing a non-finite value.
fn read_weights(path: &Path, slots: &mut Slots<'_>) -> Result<ReadWeights, EnsembleError> {
    let read_err = |source| EnsembleError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs_err::File::open(path).map_err(read_err)?;
    let file_bytes = file.metadata().map_err(read_err)?.len();
    read_tensors(
        std::io::BufReader::with_capacity(READ_CHUNK_BYTES, file),
        file_bytes,
        path,
        slots,
    )
}

/// [`read_weights`] on `source`, the file at `path` as it was when it was
/// `file_bytes` long (it may change while it is read).
fn read_tensors(
    source: impl Read,
    file_bytes: u64,
    path: &Path,
    slots: &mut Slots<'_>,
) -> Result<ReadWeights, EnsembleError> {
    let read_err = |source| EnsembleError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = HashingReader {
        inner: source,
        hasher: Sha256::new(),
    };
    let metadata = crate::header::read_metadata(&mut reader, file_bytes, path)?;
    let data_err = |name: &str, source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            EnsembleError::Header {
                path: path.to_path_buf(),
                message: format!("file ends inside tensor {name} (truncated while loading)"),
            }
        } else {
            read_err(source)
        }
    };
    let mut tensors = HashMap::new();
    let mut filled = 0;
    // Tensors in the order of their bytes: the header's offsets are
    // contiguous from 0 (checked by `read_metadata`).
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else {
            continue;
        };
        let count = info.shape.iter().product::<usize>();
        if let Some(slot) = slots.get_mut(&name) {
            if slot.len() != count {
                return Err(EnsembleError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "tensor {name} has shape {:?} ({count} values) but the member's params.json makes it {} values",
                        info.shape,
                        slot.len()
                    ),
                });
            }
            let bad = read_into_slot(&mut reader, info.dtype, slot)
                .map_err(|other| unsupported(path, &name, other))?
                .map_err(|e| data_err(&name, e))?;
            if let Some((pos, value)) = bad {
                return Err(non_finite(path, &name, value, pos));
            }
            filled += 1;
            continue;
        }
        #[allow(clippy::cast_possible_truncation)]
        let f64_as_f32 = |x: f64| x as f32;
        let shape = info.shape.as_slice();
        let (tensor, bad) = match info.dtype {
            Dtype::F32 => own_tensor(&mut reader, shape, f32::from_le_bytes, |x| x),
            Dtype::F16 => own_tensor(
                &mut reader,
                shape,
                half::f16::from_le_bytes,
                half::f16::to_f32,
            ),
            Dtype::BF16 => own_tensor(
                &mut reader,
                shape,
                half::bf16::from_le_bytes,
                half::bf16::to_f32,
            ),
            Dtype::F64 => own_tensor(&mut reader, shape, f64::from_le_bytes, f64_as_f32),
            other => return Err(unsupported(path, &name, other)),
        }
        .map_err(|e| data_err(&name, e))?;
        if let Some((pos, value)) = bad {
            return Err(non_finite(path, &name, value, pos));
        }
        let tensor = tensor.map_err(|e| tensor_err(path, &name, &e))?;
        tensors.insert(name, tensor);
    }
    if filled < slots.len() {
        let mut missing: Vec<&String> = slots
            .keys()
            .filter(|name| metadata.info(name).is_none())
            .collect();
        missing.sort();
        return Err(EnsembleError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "tensor {} is missing",
                missing.first().map_or("?", |n| n.as_str())
            ),
        });
    }
    // The header said how long the file is; anything more was written after
    // it was measured (a trainer replacing it): refuse rather than hash it.
    let mut rest = [0u8; 1];
    if reader.read(&mut rest).map_err(read_err)? != 0 {
        return Err(EnsembleError::Header {
            path: path.to_path_buf(),
            message: format!(
                "file grew beyond the {file_bytes} bytes its header describes while loading"
            ),
        });
    }
    Ok((tensors, reader.hasher.finalize().into()))
}

/// Loads one member: reads its tensors from the file in one pass (see
/// [`read_weights`]), those with a place in `slots` into it (f32), the others
/// converted to `dtype` and moved to `device`. A layer whose weight and bias
/// both went to slots is not kept by the member.
pub(crate) fn load_member(
    summary: &MemberSummary,
    dtype: DType,
    device: &Device,
    mut slots: Slots<'_>,
) -> Result<LoadedMember, EnsembleError> {
    let path = &summary.header.path;
    let (mut tensors, weights_digest) = read_weights(path, &mut slots)?;
    let mut layers = Vec::with_capacity(summary.params.layers.len());
    for (i, spec) in summary.params.layers.iter().enumerate() {
        let placed = |suffix: &str| slots.contains_key(&format!("net.{}.{suffix}", 2 * i));
        if placed("weight") && placed("bias") {
            continue;
        }
        let mut take = |suffix: &str| -> Result<Tensor, EnsembleError> {
            let name = format!("net.{}.{suffix}", 2 * i);
            tensors.remove(&name).ok_or_else(|| EnsembleError::Invalid {
                path: path.clone(),
                message: format!("tensor {name} is missing"),
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn save(path: &Path, tensors: &[(&str, Tensor)]) {
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect();
        candle_core::safetensors::save(&map, path).unwrap();
    }

    fn weights(dtype: CandleDType) -> Vec<(&'static str, Tensor)> {
        // Larger than one read chunk, so that a tensor spans several reads.
        let w: Vec<f32> = (0..40_000).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..100).map(|i| i as f32 * 0.5).collect();
        vec![
            (
                "net.0.weight",
                Tensor::from_vec(w, (100, 400), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            ),
            (
                "net.0.bias",
                Tensor::from_vec(b, 100, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            ),
        ]
    }

    /// The dtypes a weights file may be stored in.
    const STORED_DTYPES: [CandleDType; 4] = [
        CandleDType::F32,
        CandleDType::F16,
        CandleDType::BF16,
        CandleDType::F64,
    ];

    /// [`weights`] at `dtype` saved in `dir`: its path, its bytes and what
    /// candle reads from them.
    fn saved(
        dir: &Path,
        dtype: CandleDType,
    ) -> (std::path::PathBuf, Vec<u8>, HashMap<String, Tensor>) {
        let path = dir.join(format!("{dtype:?}.safetensors"));
        save(&path, &weights(dtype));
        let bytes = fs_err::read(&path).unwrap();
        let expected = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        (path, bytes, expected)
    }

    #[test]
    fn reads_each_dtype_as_candle_does_and_hashes_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in STORED_DTYPES {
            let (path, bytes, expected) = saved(dir.path(), dtype);
            let (read, digest) = read_weights(&path, &mut Slots::new()).unwrap();
            assert_eq!(digest, crate::version::sha256(&bytes), "{dtype:?}");
            assert_eq!(read.len(), expected.len());
            for (name, want) in &expected {
                let got = &read[name];
                assert_eq!(got.dtype(), want.dtype(), "{name}");
                assert_eq!(got.dims(), want.dims(), "{name}");
                let diff = (got.to_dtype(CandleDType::F64).unwrap()
                    - want.to_dtype(CandleDType::F64).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
                assert!(diff.to_bits() == 0, "{name} {dtype:?}: {diff}");
            }
        }
    }

    #[test]
    fn a_non_finite_value_is_named_with_its_tensor_and_index() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, bad, shown) in [
            (CandleDType::F32, f32::NAN, "NaN"),
            (CandleDType::F16, f32::INFINITY, "inf"),
            (CandleDType::BF16, f32::NEG_INFINITY, "-inf"),
        ] {
            let mut b: Vec<f32> = vec![0.25; 100];
            b[37] = bad;
            let path = dir.path().join(format!("bad-{dtype:?}.safetensors"));
            let mut tensors = weights(dtype);
            tensors[1].1 = Tensor::from_vec(b, 100, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            save(&path, &tensors);
            let err = read_weights(&path, &mut Slots::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "tensor net.0.bias has a non-finite value ({shown}) at flat index 37"
                )),
                "{err}"
            );
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn a_file_cut_or_grown_after_its_header_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor.safetensors");
        save(&path, &weights(CandleDType::F32));
        let bytes = fs_err::read(&path).unwrap();

        fs_err::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
        let err = read_weights(&path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("actor.safetensors"), "{err}");
        assert!(err.contains("truncated"), "{err}");

        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0u8; 16]);
        fs_err::write(&path, &longer).unwrap();
        let err = read_weights(&path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("actor.safetensors"), "{err}");
        assert!(err.contains("truncated or padded"), "{err}");

        fs_err::write(&path, &bytes[..4]).unwrap();
        let err = read_weights(&path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short for a header"), "{err}");
    }

    #[test]
    fn a_file_that_changes_while_it_is_read_is_refused_naming_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor.safetensors");
        save(&path, &weights(CandleDType::F32));
        let bytes = fs_err::read(&path).unwrap();
        let len = bytes.len() as u64;

        // Measured at its full length, then cut inside the weight (a writer
        // replacing it in place).
        let cut = std::io::Cursor::new(&bytes[..bytes.len() - 1000]);
        let err = read_tensors(cut, len, &path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("file ends inside tensor net.0.weight (truncated while loading)"),
            "{err}"
        );
        assert!(err.contains("actor.safetensors"), "{err}");

        let mut longer = bytes.clone();
        longer.push(7);
        let grown = std::io::Cursor::new(longer);
        let err = read_tensors(grown, len, &path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("grew beyond the"), "{err}");

        let whole = std::io::Cursor::new(bytes.clone());
        let (tensors, digest) = read_tensors(whole, len, &path, &mut Slots::new()).unwrap();
        assert_eq!(tensors.len(), 2);
        assert_eq!(digest, crate::version::sha256(&bytes));
    }

    #[test]
    fn tensors_with_a_slot_are_read_into_it_as_f32_and_the_others_into_tensors() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in STORED_DTYPES {
            let (path, bytes, expected) = saved(dir.path(), dtype);
            let want: Vec<f32> = expected["net.0.weight"]
                .to_dtype(CandleDType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut slot = vec![0.0f32; 40_000];
            let mut slots = Slots::new();
            slots.insert("net.0.weight".to_owned(), Slot::F32(&mut slot));
            let (rest, digest) = read_weights(&path, &mut slots).unwrap();
            assert_eq!(digest, crate::version::sha256(&bytes));
            assert_eq!(rest.keys().collect::<Vec<_>>(), ["net.0.bias"], "{dtype:?}");
            assert!(
                slot.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn a_slot_of_another_length_or_without_its_tensor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor.safetensors");
        save(&path, &weights(CandleDType::F32));

        let mut short = vec![0.0f32; 39_999];
        let mut slots = Slots::new();
        slots.insert("net.0.weight".to_owned(), Slot::F32(&mut short));
        let err = read_weights(&path, &mut slots).unwrap_err().to_string();
        assert!(
            err.contains("tensor net.0.weight has shape [100, 400] (40000 values)"),
            "{err}"
        );
        assert!(err.contains("39999"), "{err}");

        let mut other = vec![0.0f32; 10];
        let mut slots = Slots::new();
        slots.insert("net.2.weight".to_owned(), Slot::F32(&mut other));
        let err = read_weights(&path, &mut slots).unwrap_err().to_string();
        assert!(err.contains("tensor net.2.weight is missing"), "{err}");
    }

    #[test]
    fn a_value_that_does_not_fit_f32_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actor.safetensors");
        let mut b = vec![0.5f64; 100];
        b[3] = 1e300;
        let mut tensors = weights(CandleDType::F64);
        tensors[1].1 = Tensor::from_vec(b, 100, &Device::Cpu).unwrap();
        save(&path, &tensors);
        let mut slot = vec![0.0f32; 100];
        let mut slots = Slots::new();
        slots.insert("net.0.bias".to_owned(), Slot::F32(&mut slot));
        let err = read_weights(&path, &mut slots).unwrap_err().to_string();
        assert!(
            err.contains("tensor net.0.bias has a non-finite value (inf) at flat index 3"),
            "{err}"
        );
        // Without a slot too: the check is on the value as f32, the dtype
        // every other one is converted to or from.
        let err = read_weights(&path, &mut Slots::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tensor net.0.bias has a non-finite value (inf) at flat index 3"),
            "{err}"
        );
    }
}
