//! Reads a safetensors header (tensor names, shapes, dtypes) without loading
//! any tensor data.

use fs_err::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::tensor::Metadata;

use crate::EnsembleError;

/// Headers larger than this are refused (safetensors' own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

impl TensorEntry {
    /// Number of elements.
    #[must_use]
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|d| *d as u64).product()
    }
}

/// The header of one `actor.safetensors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    pub path: PathBuf,
    /// Size of the whole file in bytes.
    pub file_bytes: u64,
    /// Tensors sorted by name.
    pub tensors: Vec<TensorEntry>,
}

impl SafetensorsHeader {
    /// Reads the header of `path`: 8 bytes of length, then that many bytes of JSON.
    /// Checks that the offsets are contiguous and that the file is as long as the
    /// header says (a truncated file is refused here, before any load).
    ///
    /// # Errors
    /// [`EnsembleError::Read`] when the file cannot be read,
    /// [`EnsembleError::IsDirectory`] when `path` is a directory,
    /// [`EnsembleError::Header`] when the header is corrupt or the file truncated.
    pub fn read(path: &Path) -> Result<Self, EnsembleError> {
        let read_err = |source| EnsembleError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        let stat = file.metadata().map_err(read_err)?;
        if stat.is_dir() {
            return Err(EnsembleError::IsDirectory {
                path: path.to_path_buf(),
                expected: "a safetensors file",
            });
        }
        let file_bytes = stat.len();
        let metadata = read_metadata(&mut file, file_bytes, path)?;
        let mut tensors: Vec<TensorEntry> = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| TensorEntry {
                name,
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
            })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(SafetensorsHeader {
            path: path.to_path_buf(),
            file_bytes,
            tensors,
        })
    }

    /// Total number of parameters in the file.
    #[must_use]
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorEntry::elements).sum()
    }

    /// The tensor called `name`, if any.
    #[must_use]
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Reads a safetensors header from the start of `reader` (the file at `path`,
/// `file_bytes` long): 8 bytes of length, then that many bytes of JSON,
/// whose offsets safetensors checks (contiguous from 0, each tensor as long
/// as its dtype and shape say). Refuses a file that is not exactly as long
/// as the header describes. Leaves `reader` at the first byte of data.
pub(crate) fn read_metadata(
    reader: &mut impl Read,
    file_bytes: u64,
    path: &Path,
) -> Result<Metadata, EnsembleError> {
    let header_err = |message: String| EnsembleError::Header {
        path: path.to_path_buf(),
        message,
    };
    let mut len_bytes = [0u8; 8];
    reader.read_exact(&mut len_bytes).map_err(|_| {
        header_err(format!(
            "file is {file_bytes} bytes, too short for a header"
        ))
    })?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES || header_len + 8 > file_bytes {
        return Err(header_err(format!(
            "header length {header_len} does not fit in a file of {file_bytes} bytes"
        )));
    }
    let mut json = vec![0u8; header_len as usize];
    reader
        .read_exact(&mut json)
        .map_err(|source| EnsembleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let text =
        std::str::from_utf8(&json).map_err(|e| header_err(format!("header is not UTF-8: {e}")))?;
    let metadata: Metadata =
        serde_json::from_str(text).map_err(|e| header_err(format!("header JSON: {e}")))?;
    let expected = 8 + header_len + metadata.data_len() as u64;
    if expected != file_bytes {
        return Err(header_err(format!(
            "file is {file_bytes} bytes but its header describes {expected} (truncated or padded)"
        )));
    }
    Ok(metadata)
}
