//! Bad input to `vaak converse`: each case exits non-zero with a message that says what is wrong
//! (and for a missing model, which command fixes it).

use std::path::Path;

use super::common::*;

fn converse_err(input: &Path, extra_env: &[(&str, &str)], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reply.wav");
    let mut cmd = vaak();
    cmd.args([
        "converse",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.args(extra);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let err = stderr(&o);
    eprintln!("{err}");
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!out.exists(), "no reply file on failure");
    err
}

#[test]
fn not_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.wav");
    std::fs::write(&p, "these are my shopping notes, not audio").unwrap();
    let e = converse_err(&p, &[], &[]);
    assert!(e.contains("not a WAV file"), "{e}");
}

#[test]
fn truncated_header() {
    let eval = eval_dir();
    let bytes = std::fs::read(eval.join("en/jfk.wav")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.wav");
    std::fs::write(&p, &bytes[..24]).unwrap();
    let e = converse_err(&p, &[], &[]);
    assert!(e.contains("truncated") || e.contains("corrupt"), "{e}");
}

#[test]
fn zero_length_audio() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.wav");
    write_wav(&p, &[], 16_000, 1, 16);
    let e = converse_err(&p, &[], &[]);
    assert!(e.contains("no audio samples"), "{e}");
}

#[test]
fn unsupported_encoding() {
    // A G.711 mu-law WAV (format tag 7), which converse does not decode.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mulaw.wav");
    let data = vec![0xFFu8; 8_000];
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 26 + 8 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&18u32.to_le_bytes());
    b.extend_from_slice(&7u16.to_le_bytes()); // mu-law
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8_000u32.to_le_bytes());
    b.extend_from_slice(&8_000u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(&p, b).unwrap();
    let e = converse_err(&p, &[], &[]);
    assert!(e.contains("unsupported"), "{e}");
}

#[test]
fn only_silence_says_no_speech_was_heard() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("quiet.wav");
    let mut x = 1u32;
    let hiss: Vec<f32> = (0..16_000 * 4)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((x >> 16) as f32 / 65_536.0 - 0.5) * 0.001
        })
        .collect();
    write_wav(&p, &hiss, 16_000, 1, 16);
    let e = converse_err(&p, &[], &[]);
    assert!(e.contains("no speech was heard"), "{e}");
}

#[test]
fn missing_model_names_the_fetch_command() {
    let eval = eval_dir();
    let empty = tempfile::tempdir().unwrap();
    let e = converse_err(
        &eval.join("en/jfk.wav"),
        &[("VAAK_MODELS_DIR", empty.path().to_str().unwrap())],
        &[],
    );
    assert!(e.contains("vaak models fetch"), "{e}");
}

#[test]
fn unknown_language_is_refused() {
    let eval = eval_dir();
    let e = converse_err(&eval.join("en/jfk.wav"), &[], &["--language", "xx"]);
    assert!(e.contains("unknown language `xx`"), "{e}");
}
