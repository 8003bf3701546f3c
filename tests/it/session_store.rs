//! The shared session store on a real PostgreSQL (Debian's server, started by the test in a
//! temporary directory on a loopback port, never a mock): the conformance suite every store
//! passes, two handles appending to one session at once, and two `vaak serve` replicas
//! continuing, writing at once to, and deleting each other's sessions.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vaak::session::store::{conformance, PostgresStore, Store};

use super::common::{free_port, ran};
use super::grpc_api::Daemon;
use super::remote_llm::LlamaServer;

const USER: &str = "vaak";

/// A PostgreSQL server of its own: `initdb` in a temporary directory (as the `postgres` system
/// user: the server refuses to run as root), listening on 127.0.0.1 only; stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    databases: AtomicUsize,
}

fn run(cmd: &mut Command, what: &str) {
    let (ok, out) = ran(cmd);
    assert!(ok, "{what} failed:\n{out}");
}

/// Debian's server binaries (`/usr/lib/postgresql/<version>/bin`), the newest version.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server is not installed (setup.sh --test installs `postgresql`)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().expect("no initdb under /usr/lib/postgresql")
}

impl Postgres {
    fn start() -> Postgres {
        let bin = server_bin();
        let dir = tempfile::Builder::new()
            .prefix("vaak-pg")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        run(
            Command::new("chown").args(["-R", "postgres:postgres", dir.path().to_str().unwrap()]),
            "chown the data directory",
        );
        let as_postgres = |tool: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
            c
        };
        run(
            as_postgres("initdb").args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]),
            "initdb",
        );
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off",
            dir.path().display()
        );
        run(
            as_postgres("pg_ctl").args([
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                dir.path().join("server.log").to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ]),
            "pg_ctl start",
        );
        Postgres {
            dir,
            bin,
            port,
            databases: AtomicUsize::new(0),
        }
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its name.
    fn database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::SeqCst));
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect as the admin user");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a database");
        name
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.dir.path().join("data").to_str().unwrap_or("")])
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn store(url: &str, ttl: Duration) -> Arc<dyn Store> {
    Arc::new(PostgresStore::connect(url, ttl).expect("connect the store"))
}

#[test]
fn postgres_keeps_every_promise_of_a_store() {
    let pg = Postgres::start();
    conformance::run_all(&|ttl| store(&pg.url(&pg.database()), ttl));
    // Two handles on one database, as two replicas: appending to one session at once.
    let url = pg.url(&pg.database());
    let hour = Duration::from_secs(3600);
    conformance::concurrent_writers_lose_no_turn(store(&url, hour), store(&url, hour));

    // Deleted rows are gone from the tables themselves, and the schema is made once.
    let s = store(&url, hour);
    conformance::save_all(&*s, "t1", "gone", &conformance::history());
    assert!(s.delete("t1", "gone").unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM vaak_exchanges WHERE session_id = 'gone'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let versions: i64 = c
        .query_one("SELECT count(*) FROM vaak_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, 1, "the schema version row is written once");
    // A newer schema than this vaak knows is refused, by name.
    c.batch_execute("INSERT INTO vaak_schema (version) VALUES (99)")
        .unwrap();
    let err = PostgresStore::connect(&url, hour).expect_err("newer schema");
    assert!(
        err.to_string().contains("schema version 99"),
        "{err}\n{}",
        pg.log()
    );
}

#[test]
fn a_stopped_database_fails_calls_clearly_and_they_recover() {
    let pg = Postgres::start();
    let url = pg.url(&pg.database());
    let s = store(&url, Duration::from_secs(3600));
    conformance::save_all(&*s, "t1", "s1", &conformance::history());
    // Every connection cut (as a database restart or failover does): the next call fails with
    // the store's name, the one after reconnects and finds the history.
    let mut admin = postgres::Client::connect(&pg.url("postgres"), postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'vaak'",
            &[],
        )
        .unwrap();
    let first = s.load("t1", "s1");
    if let Err(e) = &first {
        assert!(
            e.to_string().contains(&format!("127.0.0.1:{}", pg.port)),
            "{e}"
        );
    }
    let again = s
        .load("t1", "s1")
        .expect("reconnected")
        .expect("history kept");
    assert_eq!(again.exchanges, conformance::history());
}

/// The scale test on one box: two `vaak serve` replicas sharing one PostgreSQL and one
/// llama.cpp server. A session started on replica A continues on replica B with its history;
/// both replicas answering the same session at once keep both turns; replica A is sent SIGTERM
/// during a turn and drains it (the turn is answered and saved, A exits 0); B continues the
/// session with that turn in its history; a delete on B erases the session for every replica.
#[test]
fn replicas_share_sessions_through_postgres() {
    let pg = Postgres::start();
    let db = pg.database();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let llm = rt.block_on(LlamaServer::start());
    let rest = format!(
        "[llm]\nkind = \"openai\"\nmax_tokens = 40\n[llm.openai]\nbase_url = \"{}\"\n\
         model = \"smollm\"\nfallback_to_worker = false\n[asr]\nthreads = 1\n\
         [sessions]\nstore = \"{}\"\n",
        llm.url,
        pg.url(&db)
    );
    let mut a = Daemon::start("replica-a", "", &rest, &[]);
    let b = Daemon::start("replica-b", "", &rest, &[]);
    let id = format!("replicas-{}", std::process::id());
    let talk = |d: &Daemon, text: &str| {
        d.client(
            "converse",
            &["--text-only", "--session-id", &id, "--text", text],
            120,
        )
    };
    let moved = (|| -> Result<(), String> {
        let first = talk(&a, "My name is Ravi and I live in Pune.");
        ensure!(first.ok(), first, "the first turn on replica A failed");
        ensure!(
            first.b("/resumed") == Some(false),
            first,
            "a new id must start fresh"
        );

        let on_b = talk(&b, "Where do I live?");
        ensure!(
            on_b.ok() && on_b.b("/resumed") == Some(true) && on_b.f("/history_turns") >= 1.0,
            on_b,
            "replica B did not resume the session replica A started"
        );

        // Both replicas answer the same session at once: neither turn is lost.
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| talk(&a, "What is the capital of India?"));
            let y = s.spawn(|| talk(&b, "What is two plus two?"));
            (x.join().unwrap(), y.join().unwrap())
        });
        ensure!(x.ok(), x, "the turn on replica A failed while B wrote");
        ensure!(y.ok(), y, "the turn on replica B failed while A wrote");
        let after = talk(&a, "Thank you.");
        ensure!(
            after.ok() && after.f("/history_turns") >= 4.0,
            after,
            "a turn written by one replica while the other wrote was lost"
        );
        Ok(())
    })();

    // Replica A is stopped during a turn: the turn is answered and saved, A exits cleanly.
    let drained = std::thread::scope(|s| -> Result<(), String> {
        let turn = s.spawn(|| talk(&a, "Tell me a short story about a tiger in a forest."));
        let open = a.wait_for_metric("vaak_open_sessions 1", Duration::from_secs(30));
        a.sigterm();
        let run = turn.join().unwrap();
        check!(open, "the turn never opened a session on replica A");
        ensure!(
            run.ok() && run.arr("/turns/0/turn_completed").len() == 1,
            run,
            "the turn in flight at SIGTERM was not answered"
        );
        check!(
            a.count("draining open_sessions=1") == 1,
            "replica A did not drain the open turn:\n{}",
            a.tail(20)
        );
        Ok(())
    });
    let exit = a.wait_exit(Duration::from_secs(30));
    let continued = (|| -> Result<(), String> {
        check!(
            exit.is_some_and(|e| e.success()),
            "replica A's exit after SIGTERM: {exit:?}"
        );
        let next = talk(&b, "What did you just tell me about?");
        ensure!(
            next.ok() && next.b("/resumed") == Some(true) && next.f("/history_turns") >= 6.0,
            next,
            "replica B did not get the turn replica A drained"
        );
        let del = b.client("delete", &["--session-id", &id], 30);
        ensure!(
            del.ok() && del.b("/deleted") == Some(true),
            del,
            "DeleteSession on replica B failed"
        );
        let gone = talk(&b, "What is my name?");
        ensure!(
            gone.ok() && gone.b("/resumed") == Some(false) && gone.f("/history_turns") == 0.0,
            gone,
            "the deleted session came back"
        );
        Ok(())
    })();
    let failed = moved.is_err() || drained.is_err() || continued.is_err();
    if failed {
        eprintln!("--- replica A's log:\n{}", a.tail(60));
        eprintln!("--- PostgreSQL's log:\n{}", pg.log());
    }
    b.finish(vec![
        ("a session moves between replicas", moved),
        ("replica A drains its turn on SIGTERM", drained),
        ("replica B continues, then deletes", continued),
    ]);
    drop(llm);
}

/// No database at start: `vaak serve` refuses to start, naming the store without the password.
#[test]
fn an_unreachable_store_at_start_is_refused_by_name() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vaak.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [telephony]\naudiosocket_listen = \"127.0.0.1:0\"\n\
             [sessions]\nstore = \"postgres://vaak@127.0.0.1:{port}/vaak\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vaak"))
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env("PGPASSWORD", "s3cret-never-printed")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without its store:\n{err}");
    assert!(
        err.contains(&format!("postgres 127.0.0.1:{port}/vaak")) && err.contains("connect"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "the password was printed:\n{err}");
}
