//! Tests of the configuration: defaults, every validator, the TOML round trip.

use super::*;

#[test]
fn defaults_round_trip_and_validate() {
    let text = Config::default_toml();
    let cfg = Config::parse(&text).unwrap();
    assert_eq!(cfg.server.max_sessions, DEFAULT_MAX_SESSIONS);
    assert_eq!(cfg.pipeline.languages.len(), DEFAULT_LANGUAGES.len());
}

#[test]
fn unknown_keys_are_errors() {
    let e = Config::parse("[vad]\nthreshhold = 0.4\n").unwrap_err();
    assert!(e.to_string().contains("threshhold"), "{e}");
    assert!(Config::parse("colour = 1\n").is_err());
}

#[test]
fn invalid_values_are_rejected() {
    assert!(Config::parse("[vad]\nthreshold = 1.5\n").is_err());
    assert!(Config::parse("[pipeline]\nlanguages = [\"xx\"]\n").is_err());
    assert!(Config::parse("[llm]\nkind = \"openai\"\n").is_err());
    assert!(Config::parse("[models]\nset = \"huge\"\n").is_err());
    let e = Config::parse("[kiosk.greetings]\nxx = \"hi\"\n").unwrap_err();
    assert!(e.to_string().contains("kiosk.greetings"), "{e}");
    for (bad, names) in [
        ("[webrtc]\nbind_ip = \"0.0.0.0\"\n", "bind_ip"),
        ("[webrtc]\nopus_complexity = 9\n", "opus_complexity"),
        ("[[webrtc.ice_servers]]\nurls = [\"http://x\"]\n", "stun:"),
        (
            "[[webrtc.ice_servers]]\nurls = [\"turn:t.example:3478\"]\n",
            "credential_env",
        ),
        // The end of a finished turn: after the speculative pause, at most the usual silence.
        ("[turn]\nfinished_pause_ms = 150\n", "finished_pause_ms"),
        ("[turn]\nfinished_pause_ms = 600\n", "finished_pause_ms"),
        // An unfinished one: at least the usual silence, at most 3 s.
        ("[turn]\nunfinished_pause_ms = 400\n", "unfinished_pause_ms"),
        (
            "[turn]\nunfinished_pause_ms = 5000\n",
            "unfinished_pause_ms",
        ),
    ] {
        let e = Config::parse(bad).unwrap_err();
        assert!(e.to_string().contains(names), "{bad}: {e}");
    }
    let e = Config::parse("[wyoming]\nbind = \"nowhere\"\n").unwrap_err();
    assert!(e.to_string().contains("wyoming.bind"), "{e}");
    let e = Config::parse("[wyoming]\nallow = [\"10.0.0.300\"]\n").unwrap_err();
    assert!(e.to_string().contains("wyoming.allow"), "{e}");
    let e = Config::parse("[asr]\nswitch_confidence = 2.0\n").unwrap_err();
    assert!(e.to_string().contains("switch_confidence"), "{e}");
    let c = Config::parse("[kiosk]\nwake = \"push-to-talk\"\nduplex = \"echo-suppression\"\n")
        .expect("kiosk modes parse");
    assert_eq!(
        (c.kiosk.wake, c.kiosk.duplex),
        (Wake::PushToTalk, Duplex::EchoSuppression)
    );
}

#[test]
fn the_end_of_turn_by_its_words_can_be_turned_off() {
    let cfg = Config::parse("[turn]\nfinished_pause_ms = 0\nunfinished_pause_ms = 0\n").unwrap();
    assert_eq!(
        (cfg.turn.finished_pause_ms, cfg.turn.unfinished_pause_ms),
        (0, 0)
    );
    let cfg = Config::parse("[turn]\nfinished_pause_ms = 500\nunfinished_pause_ms = 500\n");
    assert!(cfg.is_ok(), "the bounds themselves are allowed: {cfg:?}");
}

#[test]
fn partial_files_keep_other_defaults() {
    let cfg = Config::parse("[vad]\nmin_silence_ms = 700\n").unwrap();
    assert_eq!(cfg.vad.min_silence_ms, 700);
    assert_eq!(cfg.vad.threshold, DEFAULT_VAD_THRESHOLD);
}

#[test]
fn a_postgres_store_takes_its_password_from_the_environment_only() {
    let ok = Config::parse("[sessions]\nstore = \"postgres://vaak@db.internal:5432/vaak\"\n")
        .expect("a PostgreSQL store");
    assert_eq!(
        ok.sessions.postgres_url(),
        Some("postgres://vaak@db.internal:5432/vaak")
    );
    let with_password =
        Config::parse("[sessions]\nstore = \"postgres://vaak:hunter2@db.internal/vaak\"\n")
            .expect_err("a password in the file");
    assert!(
        with_password.to_string().contains("PGPASSWORD"),
        "{with_password}"
    );
    assert!(
        !with_password.to_string().contains("hunter2"),
        "{with_password}"
    );
    assert!(Config::parse(
        "[sessions]\nin_memory = true\nstore = \"postgres://vaak@db.internal/vaak\"\n"
    )
    .is_err());
    assert!(Config::parse("[sessions]\nstore = \"postgres://vaak@db:notaport/vaak\"\n").is_err());
    // A file path is still a SQLite file.
    let file = Config::parse("[sessions]\nstore = \"/var/lib/vaak/sessions.sqlite\"\n").unwrap();
    assert_eq!(file.sessions.postgres_url(), None);
}
