//! The model cache on disk: where it is, what is in it, and whether it can be trusted.
//!
//! Why it exists: the daemon must find its models with a few `stat` calls at start-up
//! ([`resolve`]), `vaak models fetch` must know in well under a second that nothing needs doing
//! (a small stamp per artifact records size + mtime + the verified sha256, so multi-hundred-MB
//! files are hashed once, not on every run), and `vaak models verify` must re-hash everything.
//!
//! Layout: `<root>/<artifact id>/<file>` plus `<root>/<id>/.vaak-stamp.json`, and
//! `<root>/downloads/` for wheels/tarballs while a fetch runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::manifest::{Artifact, FileKind, FinalFile, Manifest};
use super::{sha256_file, HashingWriter, ModelError, ModelSet};

const STAMP_NAME: &str = ".vaak-stamp.json";

/// The model cache directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelStore {
    pub root: PathBuf,
}

impl ModelStore {
    /// A store at an explicit directory (from config).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default store: `$VAAK_MODELS_DIR`, else `$XDG_CACHE_HOME/vaak/models`, else
    /// `~/.cache/vaak/models`.
    pub fn from_env() -> Result<Self, ModelError> {
        Self::default_root().map(Self::new)
    }

    /// [`ModelStore::from_env`], or `./.cache/vaak/models` when no variable locates a cache
    /// (no `VAAK_MODELS_DIR`, `XDG_CACHE_HOME` or `HOME`: a bare service environment).
    pub fn default_location() -> Self {
        Self::from_env()
            .unwrap_or_else(|_| Self::new(Path::new(".cache").join("vaak").join("models")))
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn default_root() -> Result<PathBuf, ModelError> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = var("VAAK_MODELS_DIR") {
            return Ok(p);
        }
        if let Some(p) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
            return Ok(p.join("vaak").join("models"));
        }
        var("HOME")
            .map(|h| h.join(".cache").join("vaak").join("models"))
            .ok_or(ModelError::NoCacheDir)
    }

    /// `<root>/<id>`.
    pub fn artifact_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// `<root>/downloads`: package archives while a fetch runs.
    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// `<root>/<id>/<file>`.
    pub fn path_of(&self, id: &str, file: &str) -> PathBuf {
        self.artifact_dir(id).join(file)
    }

    fn stamp_path(&self, id: &str) -> PathBuf {
        self.artifact_dir(id).join(STAMP_NAME)
    }
}

/// What `fetch` recorded after checking an artifact's files.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub id: String,
    pub files: Vec<StampFile>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StampFile {
    pub name: String,
    pub sha256: String,
    pub fingerprint: Vec<Fingerprint>,
}

/// (name, size, mtime) of a file, or of each file of a directory.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone)]
pub(crate) struct Fingerprint {
    pub name: String,
    pub size: u64,
    pub mtime_ns: u64,
}

fn fingerprint_one(path: &Path, name: String) -> Option<Fingerprint> {
    let md = std::fs::metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    let mtime = md.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(Fingerprint {
        name,
        size: md.len(),
        mtime_ns: u64::try_from(mtime.as_nanos()).ok()?,
    })
}

/// Regular files of a directory, sorted by name (bytes).
fn dir_files(dir: &Path) -> Option<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        if e.file_type().ok()?.is_file() {
            v.push((e.file_name().into_string().ok()?, e.path()));
        }
    }
    v.sort();
    Some(v)
}

/// Cheap (stat-only) fingerprint of a kept file or directory; `None` if absent.
pub(crate) fn fingerprint(path: &Path, kind: FileKind) -> Option<Vec<Fingerprint>> {
    match kind {
        FileKind::File => Some(vec![fingerprint_one(path, String::new())?]),
        FileKind::Dir => dir_files(path)?
            .into_iter()
            .map(|(n, p)| fingerprint_one(&p, n))
            .collect(),
    }
}

/// Size, sha256 and file count of a kept file or directory (a directory's sha256 is that of
/// the `sha256sum` listing of its files sorted by name).
pub(crate) fn hash_kept(path: &Path, kind: FileKind) -> Result<(u64, String, usize), ModelError> {
    match kind {
        FileKind::File => sha256_file(path).map(|(n, h)| (n, h, 1)),
        FileKind::Dir => {
            let files = dir_files(path).ok_or_else(|| {
                ModelError::io(path, std::io::Error::other("cannot list directory"))
            })?;
            let mut listing = HashingWriter::new(std::io::sink());
            let mut total = 0;
            for (name, p) in &files {
                let (n, h) = sha256_file(p)?;
                total += n;
                // Writing to io::sink never fails.
                let _ = writeln!(listing, "{h}  {name}");
            }
            Ok((total, listing.finish().1, files.len()))
        }
    }
}

pub(crate) fn read_stamp(store: &ModelStore, id: &str) -> Option<Stamp> {
    let text = std::fs::read_to_string(store.stamp_path(id)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn write_stamp(store: &ModelStore, stamp: &Stamp) -> Result<(), ModelError> {
    let path = store.stamp_path(&stamp.id);
    let tmp = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(stamp)
        .map_err(|e| ModelError::io(&path, std::io::Error::other(e)))?;
    std::fs::write(&tmp, text).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| ModelError::io(&path, e))
}

pub(crate) fn remove_stamp(store: &ModelStore, id: &str) {
    let _ = std::fs::remove_file(store.stamp_path(id));
}

/// Stamp entry for a kept file just checked to have `sha256`.
pub(crate) fn stamp_file(
    store: &ModelStore,
    a: &Artifact,
    f: &FinalFile,
    sha256: String,
) -> Result<StampFile, ModelError> {
    let path = store.path_of(&a.id, &f.name);
    let fingerprint = fingerprint(&path, f.kind).ok_or_else(|| ModelError::Missing {
        id: a.id.clone(),
        path: path.clone(),
    })?;
    Ok(StampFile {
        name: f.name.clone(),
        sha256,
        fingerprint,
    })
}

/// True when the stamp vouches for every kept file: same sha256 as the manifest and the same
/// size/mtime on disk as when it was hashed. Stat only.
pub(crate) fn stamp_ok(store: &ModelStore, a: &Artifact) -> bool {
    let Some(stamp) = read_stamp(store, &a.id) else {
        return false;
    };
    stamp.id == a.id
        && a.final_files().iter().all(|f| {
            stamp.files.iter().any(|s| {
                s.name == f.name
                    && f.sha256.as_ref().is_none_or(|want| *want == s.sha256)
                    && fingerprint(&store.path_of(&a.id, &f.name), f.kind).as_ref()
                        == Some(&s.fingerprint)
            })
        })
}

/// Re-hashes one kept file against the manifest.
pub(crate) fn check_kept(store: &ModelStore, id: &str, f: &FinalFile) -> VerifyStatus {
    let path = store.path_of(id, &f.name);
    let exists = match f.kind {
        FileKind::File => path.is_file(),
        FileKind::Dir => path.is_dir(),
    };
    if !exists {
        return VerifyStatus::Missing;
    }
    match hash_kept(&path, f.kind) {
        Err(e) => VerifyStatus::Error(e.to_string()),
        Ok((size, sha, count)) => {
            let size_ok = f.size.is_none_or(|s| s == size);
            let count_ok = f.count.is_none_or(|c| c == count);
            let sha_ok = f.sha256.as_ref().is_none_or(|s| *s == sha);
            if size_ok && count_ok && sha_ok {
                VerifyStatus::Ok { sha256: sha, size }
            } else {
                let expected = format!(
                    "sha256 {} ({} bytes)",
                    f.sha256.as_deref().unwrap_or("(not pinned)"),
                    f.size.map_or("?".into(), |s| s.to_string())
                );
                VerifyStatus::Mismatch {
                    expected,
                    actual: format!("sha256 {sha} ({size} bytes)"),
                }
            }
        }
    }
}

/// Outcome of re-hashing one kept file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyStatus {
    Ok { sha256: String, size: u64 },
    Missing,
    Mismatch { expected: String, actual: String },
    Error(String),
}

#[derive(Clone, Debug)]
pub struct VerifyResult {
    pub id: String,
    pub file: String,
    pub path: PathBuf,
    pub status: VerifyStatus,
}

impl VerifyResult {
    /// Present with the pinned size and sha256.
    pub fn ok(&self) -> bool {
        matches!(self.status, VerifyStatus::Ok { .. })
    }
}

impl std::fmt::Display for VerifyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = format!("{}/{}", self.id, self.file);
        match &self.status {
            VerifyStatus::Ok { sha256, size } => {
                write!(f, "ok       {name:<55} {size:>13} bytes  sha256 {sha256}")
            }
            VerifyStatus::Missing => write!(f, "MISSING  {name:<55} {}", self.path.display()),
            VerifyStatus::Mismatch { expected, actual } => {
                write!(f, "CORRUPT  {name:<55} expected {expected}, got {actual}")
            }
            VerifyStatus::Error(e) => write!(f, "ERROR    {name:<55} {e}"),
        }
    }
}

/// `1.2 GB`, `92.4 MB`, `1.2 kB` (decimal units).
pub(crate) fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// Re-hashes every kept file of `set` (reads everything; seconds per GB).
pub fn verify(store: &ModelStore, set: ModelSet) -> Result<Vec<VerifyResult>, ModelError> {
    Ok(verify_with(store, Manifest::embedded()?, set))
}

/// [`verify`] against an explicit manifest.
pub fn verify_with(store: &ModelStore, manifest: &Manifest, set: ModelSet) -> Vec<VerifyResult> {
    let mut out = Vec::new();
    for a in manifest.artifacts_in(set) {
        for f in a.final_files() {
            out.push(VerifyResult {
                id: a.id.clone(),
                file: f.name.clone(),
                path: store.path_of(&a.id, &f.name),
                status: check_kept(store, &a.id, &f),
            });
        }
    }
    out
}

/// One row of `vaak models list`.
#[derive(Clone, Debug)]
pub struct ListEntry {
    pub id: String,
    pub description: String,
    pub sets: Vec<String>,
    /// Every kept file exists (stat only).
    pub present: bool,
    /// A fetch checked the files and they have not changed since (stat only).
    pub checked: bool,
    /// Sum of the manifest sizes of the kept files.
    pub expected_size: u64,
    /// Sum of the sizes on disk, when present.
    pub size_on_disk: Option<u64>,
    /// The main kept file (or directory).
    pub path: PathBuf,
    pub licence: String,
}

impl std::fmt::Display for ListEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (self.present, self.checked) {
            (true, true) => "present",
            (true, false) => "unchecked",
            (false, _) => "missing",
        };
        let size = human_bytes(self.size_on_disk.unwrap_or(self.expected_size));
        write!(
            f,
            "{:<14} {state:<9} {size:>9}  sets={:<19} {}  ({})",
            self.id,
            self.sets.join(","),
            self.path.display(),
            self.licence
        )
    }
}

/// Every artifact of the manifest and its state in the store (stat only).
pub fn list(store: &ModelStore) -> Result<Vec<ListEntry>, ModelError> {
    Ok(list_with(store, Manifest::embedded()?))
}

/// [`list`] against an explicit manifest.
pub fn list_with(store: &ModelStore, manifest: &Manifest) -> Vec<ListEntry> {
    manifest
        .artifacts
        .iter()
        .map(|a| {
            let files = a.final_files();
            let prints: Option<Vec<Vec<Fingerprint>>> = files
                .iter()
                .map(|f| fingerprint(&store.path_of(&a.id, &f.name), f.kind))
                .collect();
            let size_on_disk = prints
                .as_ref()
                .map(|p| p.iter().flatten().map(|f| f.size).sum());
            ListEntry {
                id: a.id.clone(),
                description: a.description.clone(),
                sets: a.sets.clone(),
                present: prints.is_some(),
                checked: stamp_ok(store, a),
                expected_size: files.iter().filter_map(|f| f.size).sum(),
                size_on_disk,
                path: store.path_of(&a.id, files.first().map_or("", |f| f.name.as_str())),
                licence: a.licence.clone(),
            }
        })
        .collect()
}

/// Absolute paths of everything the pipeline loads, for one model set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedModels {
    pub set: ModelSet,
    pub onnxruntime_lib: PathBuf,
    pub silero_vad: PathBuf,
    pub whisper_ggml: PathBuf,
    pub llm_gguf: PathBuf,
    pub kokoro_model: PathBuf,
    pub kokoro_vocab: PathBuf,
    pub kokoro_voices_dir: PathBuf,
    pub piper_en_joe_model: PathBuf,
    pub piper_en_joe_config: PathBuf,
}

/// Paths of the models of `set`; the first one absent is [`ModelError::Missing`]. Stat only.
pub fn resolve(store: &ModelStore, set: ModelSet) -> Result<ResolvedModels, ModelError> {
    resolve_with(store, Manifest::embedded()?, set)
}

/// [`resolve`] against an explicit manifest.
pub fn resolve_with(
    store: &ModelStore,
    manifest: &Manifest,
    set: ModelSet,
) -> Result<ResolvedModels, ModelError> {
    let root = std::path::absolute(&store.root).map_err(|e| ModelError::io(&store.root, e))?;
    let abs = ModelStore::new(root);
    // nth kept file of artifact `id`, which must exist with the right kind.
    let get = |id: &str, nth: usize| -> Result<PathBuf, ModelError> {
        let a = manifest
            .artifact(id)
            .filter(|a| a.in_set(set))
            .ok_or_else(|| ModelError::Manifest(format!("set {set} has no artifact {id}")))?;
        let files = a.final_files();
        let f = files.get(nth).ok_or_else(|| {
            ModelError::Manifest(format!("{id} keeps fewer than {} files", nth + 1))
        })?;
        let path = abs.path_of(id, &f.name);
        let ok = match f.kind {
            FileKind::File => path.is_file(),
            FileKind::Dir => path.is_dir(),
        };
        if ok {
            Ok(path)
        } else {
            Err(ModelError::Missing {
                id: id.to_owned(),
                path,
            })
        }
    };
    let llm = &manifest
        .set(set)
        .ok_or_else(|| ModelError::Manifest(format!("set {set} is not defined")))?
        .llm;
    Ok(ResolvedModels {
        set,
        onnxruntime_lib: get("onnxruntime", 0)?,
        silero_vad: get("silero-vad", 0)?,
        whisper_ggml: get("whisper-base", 0)?,
        llm_gguf: get(llm, 0)?,
        kokoro_model: get("kokoro-model", 0)?,
        kokoro_vocab: get("kokoro-vocab", 0)?,
        kokoro_voices_dir: get("kokoro-voices", 0)?,
        piper_en_joe_model: get("piper-en-joe", 0)?,
        piper_en_joe_config: get("piper-en-joe", 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes every kept file of `set` with placeholder bytes (not the real sha256).
    fn fake_models(store: &ModelStore, set: ModelSet) {
        let m = Manifest::embedded().unwrap();
        for a in m.artifacts_in(set) {
            for f in a.final_files() {
                let p = store.path_of(&a.id, &f.name);
                match f.kind {
                    FileKind::File => {
                        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                        std::fs::write(&p, b"x").unwrap();
                    }
                    FileKind::Dir => {
                        std::fs::create_dir_all(&p).unwrap();
                        std::fs::write(p.join("af_heart.bin"), b"x").unwrap();
                    }
                }
            }
        }
    }

    #[test]
    fn resolve_reports_missing_then_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let e = resolve(&store, ModelSet::Default).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("model onnxruntime is missing at /"),
            "{msg}"
        );
        assert!(
            msg.ends_with("libonnxruntime.so.1.32.0: run `vaak models fetch`"),
            "{msg}"
        );

        fake_models(&store, ModelSet::Small);
        let r = resolve(&store, ModelSet::Small).unwrap();
        assert!(r
            .llm_gguf
            .ends_with("smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(r.whisper_ggml.ends_with("whisper-base/ggml-base-q8_0.bin"));
        assert!(r.kokoro_voices_dir.ends_with("kokoro-voices/voices"));
        assert!(r
            .piper_en_joe_config
            .ends_with("piper-en-joe/en_US-joe-medium.onnx.json"));
        assert!(r.onnxruntime_lib.is_absolute());
        // The default set's LLM is not there yet.
        match resolve(&store, ModelSet::Default) {
            Err(ModelError::Missing { id, .. }) => assert_eq!(id, "qwen2.5-1.5b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relative_root_resolves_to_absolute() {
        let store = ModelStore::new("some/relative/dir");
        match resolve(&store, ModelSet::Default) {
            Err(ModelError::Missing { path, .. }) => assert!(path.is_absolute()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verify_and_list_see_wrong_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let v = verify(&store, ModelSet::Default).unwrap();
        assert_eq!(v.len(), 9);
        assert!(v.iter().all(|r| r.status == VerifyStatus::Missing));
        fake_models(&store, ModelSet::Default);
        let v = verify(&store, ModelSet::Default).unwrap();
        assert!(v
            .iter()
            .all(|r| matches!(r.status, VerifyStatus::Mismatch { .. })));
        let l = list(&store).unwrap();
        let q = l.iter().find(|e| e.id == "qwen2.5-1.5b").unwrap();
        assert!(q.present && !q.checked);
        assert_eq!((q.expected_size, q.size_on_disk), (1_117_320_768, Some(1)));
        assert!(!l.iter().find(|e| e.id == "qwen2.5-0.5b").unwrap().present);
    }

    #[test]
    fn stamp_is_trusted_only_while_files_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let text = super::super::manifest::EMBEDDED_MANIFEST.replace(
            "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        );
        let m = Manifest::parse(&text).unwrap();
        let a = m.artifact("onnxruntime").unwrap();
        let f = &a.final_files()[0];
        let p = store.path_of("onnxruntime", &f.name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
        assert!(!stamp_ok(&store, a));
        let (_, sha, _) = hash_kept(&p, FileKind::File).unwrap();
        assert_eq!(
            sha,
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        let s = Stamp {
            id: a.id.clone(),
            files: vec![stamp_file(&store, a, f, sha).unwrap()],
        };
        write_stamp(&store, &s).unwrap();
        assert_eq!(read_stamp(&store, "onnxruntime").as_ref(), Some(&s));
        assert!(stamp_ok(&store, a));
        // Same size, new content and mtime → no longer trusted.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"y").unwrap();
        assert!(!stamp_ok(&store, a));
    }

    #[test]
    fn dir_hash_is_the_sha256sum_listing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.bin"), b"b").unwrap();
        std::fs::write(dir.path().join("a.bin"), b"a").unwrap();
        let (size, sha, count) = hash_kept(dir.path(), FileKind::Dir).unwrap();
        assert_eq!((size, count), (2, 2));
        // printf '%s  a.bin\n%s  b.bin\n' $(sha256 a) $(sha256 b) | sha256sum
        let listing = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a.bin\n\
                       3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b.bin\n";
        let mut h = HashingWriter::new(std::io::sink());
        h.write_all(listing.as_bytes()).unwrap();
        assert_eq!(sha, h.finish().1);
    }

    #[test]
    fn display_lines() {
        let r = VerifyResult {
            id: "whisper-base".into(),
            file: "ggml-base.bin".into(),
            path: PathBuf::from("/m/whisper-base/ggml-base.bin"),
            status: VerifyStatus::Missing,
        };
        assert!(!r.ok());
        assert!(r
            .to_string()
            .starts_with("MISSING  whisper-base/ggml-base.bin"));
        assert_eq!(human_bytes(147_951_465), "148.0 MB");
        assert_eq!(human_bytes(1_117_320_768), "1.12 GB");
        let dir = tempfile::tempdir().unwrap();
        let l = list(&ModelStore::new(dir.path())).unwrap();
        let line = l[0].to_string();
        assert!(
            line.starts_with("onnxruntime    missing") && line.contains("MIT"),
            "{line}"
        );
        assert_eq!(ModelStore::new("/x").root(), Path::new("/x"));
    }

    #[test]
    fn default_root_prefers_vaak_models_dir() {
        // Only reads the environment; the process env is shared, so just check the shape.
        let r = ModelStore::default_root();
        if let Ok(p) = r {
            assert!(p.ends_with("vaak/models") || std::env::var_os("VAAK_MODELS_DIR").is_some());
        }
    }
}
