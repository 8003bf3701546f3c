//! Slow-loris clients on every listener of `vaak serve`: a connection that dribbles its HTTP
//! request header, its AudioSocket start or its Wyoming event one byte a second is cut off
//! after a bounded time, never holds a session slot, and the daemon keeps answering others
//! meanwhile.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::common::log_field;
use super::grpc_api::Daemon;

/// Dribbles `start` then one byte a second into `addr` until the server closes the
/// connection; how long that took (`None`: still open after `limit`).
fn dribble(addr: &str, start: &'static [u8], limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let began = Instant::now();
    let _ = s.write_all(start);
    let mut buf = [0u8; 4096];
    while began.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(began.elapsed()),
            // An error reply (HTTP 408, a Wyoming error event) before the close is fine.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(began.elapsed()),
        }
        std::thread::sleep(Duration::from_millis(950));
        if s.write_all(b"x").is_err() {
            return Some(began.elapsed());
        }
    }
    None
}

fn metric(d: &Daemon, name: &str) -> Option<f64> {
    super::common::metric_value(&d.get("/metrics"), name)
}

#[test]
fn slow_clients_are_cut_off_on_every_listener() {
    let d = Daemon::start(
        "slow",
        "",
        "[pipeline]\nlanguages = [\"en\"]\n[wyoming]\nbind = \"127.0.0.1:0\"\n",
        &[],
    );
    let ready = d
        .lines()
        .into_iter()
        .find(|l| l.contains("vaak ready"))
        .unwrap_or_default();
    let wyoming = log_field(&ready, "wyoming").expect("wyoming=ADDR in the ready line");
    let limit = Duration::from_secs(45);
    let clients = [
        (
            "HTTP",
            d.http.clone(),
            &b"GET /healthz HTTP/1.1\r\nHost: vaak\r\n"[..],
        ),
        // A UUID frame announcing 16 bytes, its payload a byte a second.
        ("AudioSocket", d.audiosocket.clone(), &b"\x01\x00\x10"[..]),
        ("Wyoming", wyoming, &b"{\"type\": \"descr"[..]),
    ];
    let handles: Vec<_> = clients
        .into_iter()
        .map(|(name, addr, start)| {
            (
                name,
                std::thread::spawn(move || dribble(&addr, start, limit)),
            )
        })
        .collect();
    // Meanwhile vaak answers others and holds no session for the slow ones.
    std::thread::sleep(Duration::from_secs(3));
    let open = metric(&d, "vaak_open_sessions");
    assert_eq!(open, Some(0.0), "slow clients hold no session slot");
    for (name, h) in handles {
        let took = h.join().expect("client thread");
        eprintln!("[slow] {name}: cut off after {took:?}");
        let took = took
            .unwrap_or_else(|| panic!("{name}: a slow client was still connected after {limit:?}"));
        assert!(
            took <= Duration::from_secs(25),
            "{name}: a slow client held its connection for {took:?}"
        );
    }
    d.finish(Vec::new());
}
