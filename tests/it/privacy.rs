//! Privacy by default, end to end: a caller types a mobile number, an Aadhaar number and a PAN
//! (as digits and as Whisper groups them) into a real daemon logging at `trace`. None of them
//! may appear in clear in the daemon's log, in the session store's files (database, log,
//! shared memory), in `/metrics`, or in an error message; the conversation itself still
//! works, and `DeleteSession` leaves no trace of the session in the store.

use std::time::Duration;

use super::grpc_api::{Daemon, Outcome, Run};

/// What the caller says, and the digit runs that must never be found in clear.
const SAID: &str = "My mobile is 98765 43210, my Aadhaar is 2345 6789 0123 and my PAN is \
                    ABCDE1234F. Please repeat them back to me.";
const SECRETS: &[&str] = &[
    "98765",
    "43210",
    "9876543210",
    "2345 6789",
    "6789 0123",
    "234567890123",
    "ABCDE1234F",
    "1234F",
];

fn leaks(what: &str, haystack: &[u8]) -> Outcome {
    for s in SECRETS {
        check!(
            !haystack.windows(s.len()).any(|w| w == s.as_bytes()),
            "`{s}` found in clear in {what}"
        );
    }
    Ok(())
}

fn store_files(dir: &std::path::Path) -> Outcome {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        leaks(&path.display().to_string(), &bytes)?;
    }
    Ok(())
}

fn conversation(d: &Daemon, store: &std::path::Path) -> Outcome {
    let id = format!("privacy-{}", std::process::id());
    let r: Run = d.client(
        "converse",
        &["--text-only", "--session-id", &id, "--text", SAID],
        120,
    );
    check!(
        r.ok() && r.arr("/turns/0/turn_completed").len() == 1,
        "the turn was not answered:\n{}",
        r.show()
    );
    // The reply may repeat the numbers to the caller (the live turn hears them): only what is
    // kept and logged must not hold them.
    leaks("/metrics", d.get("/metrics").as_bytes())?;
    store_files(store)?;
    // An invalid session id made of the number: the error names it only masked or cut.
    let bad = d.client(
        "converse",
        &["--text-only", "--session-id", "98765 43210", "--text", "hi"],
        60,
    );
    check!(
        bad.exit == Some(1),
        "a bad session id was accepted:\n{}",
        bad.show()
    );
    leaks("the error a client got", bad.json.to_string().as_bytes())?;
    let del = d.client("delete", &["--session-id", &id], 30);
    check!(del.ok(), "DeleteSession failed:\n{}", del.show());
    store_files(store)?;
    // Give the log a moment to flush, then read it whole.
    std::thread::sleep(Duration::from_millis(500));
    leaks(
        "the daemon's log at trace level",
        d.lines().join("\n").as_bytes(),
    )?;
    Ok(())
}

#[test]
fn personal_numbers_stay_out_of_logs_store_and_metrics() {
    let store = tempfile::tempdir().unwrap();
    let path = store.path().join("sessions.sqlite");
    let d = Daemon::start(
        "privacy",
        "",
        &format!(
            "[pipeline]\nlanguages = [\"en\"]\n[llm]\nmax_tokens = 48\n\
             [sessions]\nstore = \"{}\"\n",
            path.display()
        ),
        &[("VAAK_LOG", "trace,h2=info,hyper=info,tonic=info,tower=info")],
    );
    let outcome = conversation(&d, store.path());
    d.finish(vec![("personal numbers kept out", outcome)]);
}
