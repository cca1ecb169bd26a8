//! Shared by the PostgreSQL tests: `TEST_POSTGRES_URL` (skip or fail under CI), a fresh database
//! per test, and a TCP proxy in front of PostgreSQL that a test can close, blackhole and reopen.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// `TEST_POSTGRES_URL`, or `None` after saying why the test skips (a failure under CI).
pub fn base_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TEST_POSTGRES_URL is not: .ci/run starts PostgreSQL and sets it")
        }
        _ => {
            eprintln!(
                "SKIPPED: TEST_POSTGRES_URL is not set (e.g. postgresql://cxw:cxw@127.0.0.1:5432/cxw_test, \
                 a role with CREATEDB); see .ci/run"
            );
            None
        }
    }
}

/// A fresh database; its URL (same server and role as `base`).
pub async fn fresh_db(base: &str) -> String {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    tokio::spawn(conn);
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!(
        "cxw_t_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE (the role needs CREATEDB)");
    with_db(base, &name)
}

fn with_db(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let authority_end = head
        .find("://")
        .map(|i| i + 3 + head[i + 3..].find('/').unwrap_or(head.len() - i - 3))
        .expect("TEST_POSTGRES_URL must be a postgresql:// URL");
    format!("{}/{name}{query}", &head[..authority_end])
}

/// A plain client for `url`.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Rows in `bookings` matching `filter` (SQL) in the database at `url`.
pub async fn count(url: &str, filter: &str) -> i64 {
    sql(url)
        .await
        .query_one(
            &format!("SELECT count(*) FROM bookings WHERE {filter}"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A TCP proxy to PostgreSQL that can refuse, swallow, or pass connections.
pub struct Proxy {
    pub port: u16,
    /// 0 pass, 1 refuse (reset at once), 2 blackhole (accept, never answer).
    mode: Arc<AtomicU8>,
    /// Bumped to cut every open connection.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Proxy modes.
pub const PASS: u8 = 0;
pub const REFUSE: u8 = 1;
pub const BLACKHOLE: u8 = 2;

impl Proxy {
    pub async fn start(target: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (m, g) = (mode.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = g.subscribe();
                let target = target.clone();
                match m.load(Ordering::SeqCst) {
                    REFUSE => drop(inbound),
                    BLACKHOLE => {
                        tokio::spawn(async move {
                            let _held = inbound;
                            let _ = cut.changed().await;
                        });
                    }
                    _ => {
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(target).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = cut.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        Proxy {
            port,
            mode,
            generation,
        }
    }

    /// Switches the mode and cuts every open connection.
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Host and port of a `postgresql://user:pw@host:port/db` URL.
pub fn host_port(url: &str) -> (String, u16) {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("TEST_POSTGRES_URL must be TCP, not {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// `url` with its host and port replaced by the proxy's.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let (host, port) = host_port(url);
    url.replacen(
        &format!("{host}:{port}"),
        &format!("127.0.0.1:{}", proxy.port),
        1,
    )
}
