//! An ensemble directory: its members ranked by score, and the best `top_n`
//! read as far as their manifests and safetensors headers.

use std::path::{Path, PathBuf};

use crate::manifest::{EnsembleParams, MemberParams};
use crate::{EnsembleError, SafetensorsHeader};

/// File names inside an ensemble directory.
pub(crate) const ENSEMBLE_FILE: &str = "ensemble_params.json";
pub(crate) const PARAMS_FILE: &str = "params.json";
pub(crate) const WEIGHTS_FILE: &str = "actor.safetensors";

/// An ensemble directory with its members ranked best first.
#[derive(Debug, Clone)]
pub struct EnsembleCatalog {
    pub dir: PathBuf,
    pub params: EnsembleParams,
}

/// One member, read as far as its manifest and header (no tensor data), with
/// its structure checked against the manifest.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    /// 0 = best score.
    pub rank: usize,
    /// The member's directory name as listed (`trial_0007`).
    pub name: String,
    pub dir: PathBuf,
    pub score: f64,
    pub params: MemberParams,
    pub header: SafetensorsHeader,
    /// SHA-256 of `params.json` as read (part of the ensemble's version).
    pub params_digest: [u8; 32],
}

/// Why a member cannot run under a profile's symbols and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberMisfit {
    /// The member trades a symbol the profile does not.
    Symbol { member: PathBuf, symbol: String },
    /// The member needs more hours of history than the profile keeps.
    History {
        member: PathBuf,
        need: u32,
        lookback: u32,
    },
}

impl std::fmt::Display for MemberMisfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberMisfit::Symbol { member, symbol } => write!(
                f,
                "member {} trades {symbol}, which the profile does not",
                member.display()
            ),
            MemberMisfit::History {
                member,
                need,
                lookback,
            } => write!(
                f,
                "member {} needs {need} h of history (lookback {lookback} + longest feature window - 1)",
                member.display()
            ),
        }
    }
}

/// The first of `members` that cannot run on `symbols` with `history_hours`
/// of history (the one rule the budget gate at start and a reload share).
///
/// # Errors
/// [`MemberMisfit`] naming the member.
pub fn check_members_fit(
    members: &[MemberSummary],
    symbols: &[trader_core::Symbol],
    history_hours: u32,
) -> Result<(), MemberMisfit> {
    for m in members {
        if let Some(s) = m.params.symbols.iter().find(|s| !symbols.contains(s)) {
            return Err(MemberMisfit::Symbol {
                member: m.dir.clone(),
                symbol: s.to_string(),
            });
        }
        let need = m.params.required_history_hours();
        if history_hours < need {
            return Err(MemberMisfit::History {
                member: m.dir.clone(),
                need,
                lookback: m.params.lookback,
            });
        }
    }
    Ok(())
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EnsembleError> {
    read_json_digest(path).map(|(value, _)| value)
}

/// [`read_json`], and the SHA-256 of the bytes it parsed.
fn read_json_digest<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(T, [u8; 32]), EnsembleError> {
    if path.is_dir() {
        return Err(EnsembleError::IsDirectory {
            path: path.to_path_buf(),
            expected: "a JSON file",
        });
    }
    let text = fs_err::read_to_string(path).map_err(|source| EnsembleError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value = serde_json::from_str(&text).map_err(|e| EnsembleError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((value, crate::version::sha256(text.as_bytes())))
}

impl EnsembleCatalog {
    /// Reads `ensemble_params.json` and ranks the members by score, best first
    /// (ties broken by directory name, so the order is deterministic).
    ///
    /// # Errors
    /// A missing directory (or a file in its place) or manifest, invalid JSON,
    /// an unsupported format, a non-finite score or a member listed twice.
    pub fn open(dir: &Path) -> Result<Self, EnsembleError> {
        if !dir.is_dir() {
            return Err(if dir.exists() {
                EnsembleError::NotADir(dir.to_path_buf())
            } else {
                EnsembleError::MissingDir(dir.to_path_buf())
            });
        }
        let path = dir.join(ENSEMBLE_FILE);
        let mut params: EnsembleParams = read_json(&path)?;
        let invalid = |message: String| EnsembleError::Invalid {
            path: path.clone(),
            message,
        };
        if params.format != 1 {
            return Err(invalid(format!(
                "format {} is not supported (expected 1)",
                params.format
            )));
        }
        if params.members.is_empty() {
            return Err(invalid("`members` is empty".into()));
        }
        for (i, m) in params.members.iter().enumerate() {
            if !m.score.is_finite() {
                return Err(invalid(format!(
                    "members[{i}] ({}): score {} is not finite",
                    m.dir, m.score
                )));
            }
            if params.members[..i].iter().any(|o| o.dir == m.dir) {
                return Err(invalid(format!(
                    "members[{i}]: {:?} is listed twice",
                    m.dir
                )));
            }
        }
        params
            .members
            .sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.dir.cmp(&b.dir)));
        Ok(EnsembleCatalog {
            dir: dir.to_path_buf(),
            params,
        })
    }

    /// Number of members listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.params.members.len()
    }

    /// Whether no member is listed (never true for an opened catalog).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.params.members.is_empty()
    }

    /// Reads the manifests and headers of the best `top_n` members and checks
    /// their structure. No tensor data is read.
    ///
    /// # Errors
    /// `top_n` of 0 or larger than the ensemble, or any member error (naming
    /// the member).
    pub fn select(&self, top_n: usize) -> Result<Vec<MemberSummary>, EnsembleError> {
        if top_n == 0 {
            return Err(EnsembleError::TopNZero {
                dir: self.dir.clone(),
            });
        }
        if top_n > self.len() {
            return Err(EnsembleError::TopNTooLarge {
                top_n,
                available: self.len(),
                dir: self.dir.clone(),
            });
        }
        self.params.members[..top_n]
            .iter()
            .enumerate()
            .map(|(rank, m)| {
                let dir = self.dir.join(&m.dir);
                if !dir.is_dir() {
                    let what = if dir.exists() {
                        "is a file, not a directory"
                    } else {
                        "does not exist"
                    };
                    return Err(EnsembleError::Invalid {
                        path: self.dir.join(ENSEMBLE_FILE),
                        message: format!("member directory {} {what}", dir.display()),
                    });
                }
                let (params, params_digest): (MemberParams, _) =
                    read_json_digest(&dir.join(PARAMS_FILE))?;
                let header = SafetensorsHeader::read(&dir.join(WEIGHTS_FILE))?;
                let member = MemberSummary {
                    rank,
                    name: m.dir.clone(),
                    dir,
                    score: m.score,
                    params,
                    header,
                    params_digest,
                };
                member.check_structure()?;
                Ok(member)
            })
            .collect()
    }
}

impl MemberSummary {
    /// Total parameters of this member, from its header.
    #[must_use]
    pub fn parameter_count(&self) -> u64 {
        self.header.parameter_count()
    }

    /// Checks params.json against itself and against the safetensors header:
    /// format, layers chain, input = `1 + S + L*S*F`, last layer = S outputs,
    /// and every `net.{2i}.weight` [out, in] / `net.{2i}.bias` [out] present.
    ///
    /// # Errors
    /// [`EnsembleError::Invalid`] naming the member directory and the key or tensor.
    pub fn check_structure(&self) -> Result<(), EnsembleError> {
        self.check_params()?;
        self.check_tensors()
    }

    fn check_params(&self) -> Result<(), EnsembleError> {
        let params_path = self.dir.join(PARAMS_FILE);
        let invalid = |path: &Path, message: String| EnsembleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let p = &self.params;
        if p.format != 1 {
            return Err(invalid(
                &params_path,
                format!("format {} is not supported (expected 1)", p.format),
            ));
        }
        if p.symbols.is_empty() || p.features.is_empty() || p.lookback == 0 {
            return Err(invalid(
                &params_path,
                "symbols, features and lookback must be non-empty".into(),
            ));
        }
        let Some(first) = p.layers.first() else {
            return Err(invalid(&params_path, "`layers` is empty".into()));
        };
        if first.inputs != p.state_dim() {
            return Err(invalid(
                &params_path,
                format!(
                    "layers[0].in = {} but 1 + S + L*S*F = 1 + {s} + {l}*{s}*{f} = {}",
                    first.inputs,
                    p.state_dim(),
                    s = p.symbols.len(),
                    l = p.lookback,
                    f = p.features.len()
                ),
            ));
        }
        for (i, pair) in p.layers.windows(2).enumerate() {
            if pair[0].outputs != pair[1].inputs {
                return Err(invalid(
                    &params_path,
                    format!(
                        "layers do not chain: layers[{i}].out = {} but layers[{}].in = {}",
                        pair[0].outputs,
                        i + 1,
                        pair[1].inputs
                    ),
                ));
            }
        }
        let last = p.layers.last().unwrap_or(first);
        if last.outputs != p.symbols.len() {
            return Err(invalid(
                &params_path,
                format!(
                    "last layer has {} outputs but the model trades {} symbols",
                    last.outputs,
                    p.symbols.len()
                ),
            ));
        }
        if let Some(norm) = &p.normalize {
            let want = p.features.len();
            if norm.mean.len() != want || norm.std.len() != want {
                return Err(invalid(
                    &params_path,
                    format!(
                        "normalize has {} means and {} stds for {want} features",
                        norm.mean.len(),
                        norm.std.len()
                    ),
                ));
            }
            if norm.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
                || norm.mean.iter().any(|m| !m.is_finite())
            {
                return Err(invalid(
                    &params_path,
                    "normalize has a non-finite mean or a std <= 0".into(),
                ));
            }
        }
        Ok(())
    }

    fn check_tensors(&self) -> Result<(), EnsembleError> {
        let weights_path = self.dir.join(WEIGHTS_FILE);
        let invalid = |path: &Path, message: String| EnsembleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let p = &self.params;
        let mut expected = 0;
        for (i, layer) in p.layers.iter().enumerate() {
            for (suffix, shape) in [
                ("weight", vec![layer.outputs, layer.inputs]),
                ("bias", vec![layer.outputs]),
            ] {
                let name = format!("net.{}.{suffix}", 2 * i);
                let Some(t) = self.header.tensor(&name) else {
                    return Err(invalid(&weights_path, format!("tensor {name} is missing")));
                };
                if t.shape != shape {
                    return Err(invalid(
                        &weights_path,
                        format!(
                            "tensor {name} has shape {:?}, expected {shape:?} from layers[{i}]",
                            t.shape
                        ),
                    ));
                }
                if !matches!(t.dtype.as_str(), "F32" | "F16" | "BF16" | "F64") {
                    return Err(invalid(
                        &weights_path,
                        format!("tensor {name} has dtype {}, expected a float", t.dtype),
                    ));
                }
                expected += 1;
            }
        }
        if self.header.tensors.len() != expected {
            let extra: Vec<&str> = self
                .header
                .tensors
                .iter()
                .map(|t| t.name.as_str())
                .filter(|n| {
                    !(0..p.layers.len()).any(|i| {
                        *n == format!("net.{}.weight", 2 * i) || *n == format!("net.{}.bias", 2 * i)
                    })
                })
                .collect();
            return Err(invalid(
                &weights_path,
                format!("unexpected tensors {extra:?}"),
            ));
        }
        Ok(())
    }
}
