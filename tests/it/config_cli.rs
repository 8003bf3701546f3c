//! `vaak config`: the printed defaults parse back; unknown keys and bad values are rejected
//! with the key named.

use super::common::{run, stderr};

#[test]
fn print_default_round_trips_through_check() {
    let o = run(&["config", "print-default"]);
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("vaak.toml");
    std::fs::write(&f, &o.stdout).unwrap();
    let c = run(&["config", "check", f.to_str().unwrap()]);
    assert!(c.status.success(), "{}", stderr(&c));
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[asr]\nthreds = 4\n").unwrap();
    let c = run(&["config", "check", f.to_str().unwrap()]);
    assert!(!c.status.success());
    assert!(stderr(&c).contains("threds"), "{}", stderr(&c));
}
