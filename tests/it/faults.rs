//! Faults injected into a running `vaak serve`: the session store's disk fills up. The daemon
//! runs in a mount namespace of its own with its store on a 512 KiB tmpfs, which the test fills
//! through `/proc/<pid>/root`. Conversations go on (answered), the lost saves are logged,
//! health stays up, and once space is back history is kept again. (A read-only remount under
//! the open store is refused by the kernel — "mount point is busy" — so that fault cannot
//! happen to a running daemon.)

use std::io::Write;
use std::time::Duration;

use super::grpc_api::{Daemon, Outcome, Run};

fn talk(d: &Daemon, id: &str, text: &str) -> Run {
    d.client(
        "converse",
        &["--text-only", "--session-id", id, "--text", text],
        90,
    )
}

fn answered(r: &Run) -> bool {
    r.ok()
        && r.arr("/turns/0/turn_completed").len() == 1
        && !r.s("/turns/0/reply_text").trim().is_empty()
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let block = vec![0u8; 4096];
    let mut written = 0;
    while f.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = f.sync_all();
    written
}

fn disk_full(d: &Daemon, store_dir: &str) -> Outcome {
    let root = format!("/proc/{}/root{store_dir}", d.pid());
    let filler = std::path::Path::new(&root).join("filler");
    let n = fill(&filler);
    eprintln!("[disk] filled the store's tmpfs with {n} bytes");
    let id = format!("disk-full-{}", std::process::id());
    let a = talk(d, &id, "My name is Ravi and I live in Pune.");
    ensure!(answered(&a), a, "a turn on a full disk was not answered");
    ensure!(
        d.wait_for(
            "cannot save the session history",
            1,
            Duration::from_secs(10)
        ),
        a,
        "the lost save was not logged"
    );
    d.metrics_hold(&["vaak_history_saves_failed_total 1"])?;
    ensure!(
        d.get("/healthz").trim() == "ok",
        a,
        "health went down with the disk"
    );

    // Space back: history is kept again.
    std::fs::remove_file(&filler).map_err(|e| format!("remove the filler: {e}"))?;
    let id = format!("disk-back-{}", std::process::id());
    let b = talk(d, &id, "My name is Ravi and I live in Pune.");
    ensure!(
        answered(&b),
        b,
        "a turn after the disk was freed was not answered"
    );
    let c = talk(d, &id, "What is my name?");
    ensure!(
        answered(&c) && c.b("/resumed") == Some(true) && c.f("/history_turns") >= 1.0,
        c,
        "history was not kept once space was back"
    );

    Ok(())
}

#[test]
fn a_full_disk_costs_history_not_conversations() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap().to_string();
    let mount = format!("mount -t tmpfs -o size=512k tmpfs '{dir}' && exec \"$0\" \"$@\"");
    let d = Daemon::start_wrapped(
        "disk",
        "",
        &format!(
            "[pipeline]\nlanguages = [\"en\"]\n[llm]\nmax_tokens = 32\n\
             [sessions]\nstore = \"{dir}/sessions.sqlite\"\n"
        ),
        &[],
        &["unshare", "-m", "sh", "-c", &mount],
    );
    let outcome = disk_full(&d, &dir);
    d.finish(vec![("a full disk", outcome)]);
}
