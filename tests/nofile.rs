//! A flood of silent connections at a low file-descriptor limit does not starve a normal client
//! (issue 14): the real binary at `ulimit -n 1024` keeps answering while 1300 silent sockets are
//! open, by closing the oldest, and stays under its limit without a warning per refused accept.
//! The connection layer's other edges are in `tests/api/edges.rs`.
//!
//! A test binary of its own: it raises this process's RLIMIT_NOFILE (a process-wide limit) and
//! holds 1300 descriptors while it runs; in the shared `api` binary the tests running beside it
//! would compete for the same limit and could fail with "too many open files".

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::process::{Binary, terminate};

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (as far as the hard limit allows).
fn raise_nofile(want: u64) -> u64 {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim), 0);
        if rlim.rlim_cur < want {
            rlim.rlim_cur = want.min(rlim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rlim), 0);
        }
    }
    rlim.rlim_cur
}

fn health(address: &str) -> Result<String, String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    Ok(out)
}

#[test]
fn a_normal_client_is_served_while_1300_silent_sockets_are_open_at_ulimit_1024() {
    const SILENT: usize = 1300;
    if raise_nofile(SILENT as u64 + 200) < SILENT as u64 + 100 {
        eprintln!("skipped: this process cannot hold {SILENT} sockets");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address, log) = Binary::new(&dir)
        .nofile(1024)
        .env("HEADER_READ_TIMEOUT_SECS", "120")
        .start_with_log();
    let started = Instant::now();

    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        let s =
            std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("silent socket {i}: {e}"));
        silent.push(s);
        if i % 100 == 99 {
            let answer = health(&address).unwrap_or_else(|e| panic!("after {} silent: {e}", i + 1));
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    for _ in 0..20 {
        let answer = health(&address).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    // Room was made by closing the oldest silent sockets: they read end-of-file.
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(first.read(&mut buf).unwrap(), 0, "the oldest was closed");

    // The process stayed under its limit, and did not log a warning per failure.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count();
    assert!(fds <= 1024, "{fds} descriptors");
    let lines = log.lock().unwrap().clone();
    let warnings = lines.iter().filter(|l| l.contains("\"WARNING\"")).count();
    assert!(warnings <= 3, "{warnings} warnings:\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("connection cap reached")),
        "{}",
        lines.join("\n")
    );
    drop(silent);
    terminate(&mut child);
}
