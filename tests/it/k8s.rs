//! The Kubernetes manifests (`packaging/k8s`): every resource passes `kubernetes-validate`
//! (PyPI, strict: unknown fields are errors) against a current schema, a broken copy does not
//! (so the check can fail), the kustomization lists every file, and the ConfigMap's vaak.toml
//! passes `vaak config check` with the listen ports the Deployment and Service expose.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::run;
use super::grpc_api::py_env;

const K8S_VERSION: &str = "1.32.0";

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// kubernetes-validate from the test venv, strict; (passed, its output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let validator = Path::new(&py_env().python).with_file_name("kubernetes-validate");
    let out = Command::new(validator)
        .args(["-k", K8S_VERSION, "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate (scripts/py-env.sh installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One value of a manifest, read by PyYAML (installed with kubernetes-validate).
fn yaml_value(file: &Path, expr: &str) -> String {
    let script = format!(
        "import sys, yaml\ndocs = list(yaml.safe_load_all(open(sys.argv[1])))\nprint({expr})"
    );
    let out = Command::new(&py_env().python)
        .args(["-c", &script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{expr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn the_kubernetes_manifests_validate_and_agree_with_the_config() {
    let files = manifests();
    assert!(files.len() >= 8, "{files:?}");
    let (ok, out) = validate(&files);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    assert!(!out.contains("WARN"), "{out}");

    // The validator is not a rubber stamp: a wrong type and an unknown field are refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(
        files
            .iter()
            .find(|f| f.ends_with("deployment.yaml"))
            .unwrap(),
    )
    .unwrap()
    .replace("replicas: 2", "replicas: two\n  replica: 2");
    std::fs::write(&broken, text).unwrap();
    let (ok, out) = validate(&[broken]);
    assert!(!ok, "a broken Deployment passed:\n{out}");

    // Every manifest is in the kustomization.
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/k8s");
    let listed = std::fs::read_to_string(k8s.join("kustomization.yaml")).unwrap();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            listed.contains(&format!("- {name}")),
            "{name} is not in kustomization.yaml"
        );
    }

    // The ConfigMap's vaak.toml is a valid config, and its ports are the ones exposed.
    let config = yaml_value(&k8s.join("configmap.yaml"), "docs[0]['data']['vaak.toml']");
    let toml_file = dir.path().join("vaak.toml");
    std::fs::write(&toml_file, &config).unwrap();
    let checked = run(&["config", "check", toml_file.to_str().unwrap()]);
    assert!(
        checked.status.success(),
        "the ConfigMap's vaak.toml: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let ports = yaml_value(
        &k8s.join("deployment.yaml"),
        "' '.join(str(p['containerPort']) for p in docs[0]['spec']['template']['spec']['containers'][0]['ports'])",
    );
    assert_eq!(ports, "50051 8080");
    assert!(
        config.contains("0.0.0.0:50051") && config.contains("0.0.0.0:8080"),
        "{config}"
    );
    let image = yaml_value(
        &k8s.join("deployment.yaml"),
        "docs[0]['spec']['template']['spec']['containers'][0]['image']",
    );
    assert_eq!(
        image, "localhost/vaak:dev",
        "the image scripts/container.sh builds"
    );
}
