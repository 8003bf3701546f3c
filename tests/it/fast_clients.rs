//! A client that sends faster than real time (a file streamed as fast as the socket takes it):
//! HTTP/2 flow control slows it, nothing it sent is dropped, and its turn is answered whole —
//! while a real-time caller on the same daemon is answered as usual.

use super::common::eval_dir;
use super::grpc_api::{Daemon, Outcome, Run};

/// Every final transcript of the clip's step, whichever turns it was cut into.
fn heard(run: &Run) -> String {
    run.arr("/turns/0/transcripts")
        .iter()
        .filter(|t| t["is_final"] == true)
        .filter_map(|t| t["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[test]
fn a_client_faster_than_real_time_loses_nothing() {
    let d = Daemon::start(
        "fast",
        "",
        "[llm]\nmax_tokens = 24\n[asr]\nthreads = 1\n",
        &[],
    );
    let jfk = eval_dir().join("en/jfk.wav");
    let jfk = jfk.to_str().unwrap_or_default();
    let (fast, paced) = std::thread::scope(|s| {
        // No --realtime: 11 s of speech and the trailing silence as fast as they go.
        let fast = s.spawn(|| d.client("converse", &["--wav", jfk, "--turn-timeout-s", "90"], 150));
        let paced = s.spawn(|| {
            d.client(
                "converse",
                &["--realtime", "--wav", jfk, "--turn-timeout-s", "90"],
                150,
            )
        });
        (fast.join().unwrap(), paced.join().unwrap())
    });
    let outcome = (|| -> Outcome {
        // Both halves of the clip are heard, in one turn or in two (a caller who pauses after
        // "ask not" may be answered before going on).
        for (who, r) in [("fast", &fast), ("real-time", &paced)] {
            ensure!(r.ok(), r, "the {who} client's conversation failed");
            let text = heard(r);
            ensure!(
                text.contains("fellow") && text.contains("country"),
                r,
                "the {who} client's speech was not heard whole: {text:?}"
            );
            ensure!(
                r.f("/turns/0/reply_audio/seconds") > 0.5,
                r,
                "the {who} client got no spoken reply"
            );
        }
        ensure!(
            fast.wall < paced.wall,
            fast,
            "the fast client was not faster than real time ({:?} vs {:?})",
            fast.wall,
            paced.wall
        );
        d.metrics_hold(&["vaak_audio_chunks_dropped_total 0"])
    })();
    d.finish(vec![("faster than real time", outcome)]);
}
