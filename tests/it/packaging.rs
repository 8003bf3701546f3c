//! The kiosk as a Debian service: `cargo deb` packs the two binaries, the systemd unit and the
//! default config; the package installs on this machine (a system user in the audio group, its
//! state and cache directories, the unit enabled), the unit passes `systemd-analyze verify`,
//! the default config passes `vaak config check`, the kiosk runs as that user from the
//! installed files (models fetched into its cache, devices missing: reported and retried,
//! SIGTERM stops it cleanly), and a purge leaves nothing behind.
//!
//! Needs root (it installs a package, as an operator would); CI runs as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::common::sh;
use std::time::{Duration, Instant};

const PACKAGE: &str = "vaak";
const UNIT: &str = "/lib/systemd/system/vaak-kiosk.service";
const CONFIG: &str = "/etc/vaak/kiosk.toml";
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/vaak-kiosk.service";
const LEFT_BY_PURGE: [&str; 6] = [
    "/usr/bin/vaak",
    "/usr/bin/vaak-llm",
    UNIT,
    ENABLED,
    "/etc/vaak",
    "/var/lib/vaak",
];

/// `/usr/bin/vaak ARGS` as the package's user with the unit's clean environment (none of this
/// test's `VAAK_*` variables).
fn as_vaak(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "vaak", "--", "/usr/bin/vaak"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/var/lib/vaak")
        .env("VAAK_LOG", "info");
    c
}

/// Purges the package when the test ends, however it ends, so the machine is as it was.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let (ok, out) = sh("dpkg", &["--purge", PACKAGE]);
        if !ok {
            eprintln!("dpkg --purge {PACKAGE}: {out}");
        }
    }
}

fn cargo_deb() -> PathBuf {
    let p = std::env::var_os("VAAK_CARGO_DEB")
        .map(PathBuf::from)
        .expect(
            "VAAK_CARGO_DEB is not set: run scripts/test.sh (setup.sh --test installs cargo-deb)",
        );
    assert!(p.is_file(), "cargo-deb not found at {}", p.display());
    p
}

/// The package, built from the binaries this test run was built with (`--no-build`).
fn build_deb(out: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let (ok, log) = sh(
        cargo_deb().to_str().unwrap(),
        &[
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "-p",
            PACKAGE,
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "cargo deb failed:\n{log}");
    std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}:\n{log}", out.display()))
}

/// Hard links (copies across file systems) of the test model cache into the package's cache,
/// as if its first start had fetched them; `vaak models fetch` then checks them by stamp.
fn seed_models(cache: &Path) {
    let ours = PathBuf::from(std::env::var_os("VAAK_MODELS_DIR").expect("VAAK_MODELS_DIR"));
    let (linked, _) = sh(
        "cp",
        &[
            "-al",
            &format!("{}/.", ours.display()),
            cache.to_str().unwrap(),
        ],
    );
    if !linked {
        let (ok, out) = sh(
            "cp",
            &[
                "-a",
                &format!("{}/.", ours.display()),
                cache.to_str().unwrap(),
            ],
        );
        assert!(ok, "cannot copy the models: {out}");
    }
}

#[test]
fn the_kiosk_package_installs_runs_as_its_user_and_purges() {
    let (_, uid) = sh("id", &["-u"]);
    assert_eq!(uid.trim(), "0", "installing a package needs root");
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());

    // What the package holds and needs.
    let (_, info) = sh("dpkg-deb", &["-f", deb.to_str().unwrap(), "Depends"]);
    for dep in ["libasound2", "libespeak-ng1", "adduser"] {
        assert!(info.contains(dep), "Depends lacks {dep}: {info}");
    }
    let (_, files) = sh("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    for f in ["/usr/bin/vaak", "/usr/bin/vaak-llm", CONFIG, UNIT] {
        assert!(
            files.contains(&format!(".{f}")),
            "the package lacks {f}:\n{files}"
        );
    }

    // Installed as an operator would.
    let _ = sh("dpkg", &["--purge", PACKAGE]);
    let installed = Installed;
    let (ok, out) = sh("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(ok, "dpkg -i failed:\n{out}");
    let (_, groups) = sh("id", &["-nG", "vaak"]);
    assert!(
        groups.split_whitespace().any(|g| g == "audio"),
        "the vaak user is not in the audio group: {groups}"
    );
    let (_, owner) = sh("stat", &["-c", "%U %a", "/var/lib/vaak", "/var/cache/vaak"]);
    assert_eq!(owner, "vaak 750\nvaak 750\n", "state and cache directories");
    assert!(
        std::fs::read_link(ENABLED).is_ok(),
        "the unit is not enabled ({ENABLED})"
    );

    // The unit and the default config are valid as shipped.
    let (ok, out) = sh("systemd-analyze", &["verify", UNIT]);
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
    let (ok, out) = sh("/usr/bin/vaak", &["config", "check", CONFIG]);
    assert!(ok, "vaak config check {CONFIG}:\n{out}");

    // The unit's two commands, as its user: models by stamp, then the kiosk with no devices.
    let config = std::fs::read_to_string(CONFIG).unwrap();
    assert!(config.contains("set = \"default\""), "{config}");
    std::fs::write(
        CONFIG,
        config.replace("set = \"default\"", "set = \"small\""),
    )
    .unwrap();
    let cache = Path::new("/var/cache/vaak/models");
    std::fs::create_dir_all(cache).unwrap();
    seed_models(cache);
    let fetched = as_vaak(&["models", "fetch", "--config", CONFIG])
        .output()
        .unwrap();
    let (ok, out) = (
        fetched.status.success(),
        String::from_utf8_lossy(&fetched.stderr).into_owned(),
    );
    assert!(
        ok && out.contains("ready in /var/cache/vaak/models"),
        "models fetch:\n{out}"
    );
    let log = tmp.path().join("kiosk.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut kiosk = as_vaak(&["kiosk", "--config", CONFIG])
        .stdin(Stdio::null())
        .stderr(out.try_clone().unwrap())
        .stdout(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let printed = || std::fs::read_to_string(&log).unwrap_or_default();
    while !printed().contains("[audio device problem") {
        if Instant::now() > deadline || kiosk.try_wait().unwrap().is_some() {
            let _ = kiosk.kill();
            panic!(
                "the kiosk did not start and report its missing devices:\n{}",
                printed()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM to the kiosk itself (runuser's child), as systemd's stop would send it.
    let (_, pid) = sh("pgrep", &["-P", &kiosk.id().to_string(), "-x", "vaak"]);
    let (ok, out) = sh("kill", &["-TERM", pid.trim()]);
    assert!(ok, "kill -TERM {pid}: {out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = kiosk.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = kiosk.kill();
            panic!("the kiosk did not stop on SIGTERM:\n{}", printed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "kiosk exit {status:?}:\n{}", printed());

    // A purge leaves nothing of it behind (the system user stays, as Debian keeps them).
    drop(installed);
    let left: Vec<&str> = LEFT_BY_PURGE
        .iter()
        .copied()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(Path::new("/var/cache/vaak").symlink_metadata().is_err());
}
