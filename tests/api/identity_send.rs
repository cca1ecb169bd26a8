//! The local loop of end-user identity (issue 12, item 7), with the real binaries over real HTTP: a
//! server with `ACCOUNT_ACCESS=verified` trusting the dev identity provider's key set (the machinery
//! of `examples/dev_idp`: real RS256 keys, the key set and the token mint on loopback), and
//! `cx-webhook send --user SUBJECT`, which fetches SUBJECT's ID token from that provider and puts
//! it in the request's payload. `--user` never sends a request without the token.

use crate::common;

use std::net::TcpListener;
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::idp::{AGENT, AUDIENCE, END_USER_AUDIENCE, Idp, agent_claims, key};
use common::process::{Binary, signal, wait_exit};
use serde_json::Value;

/// What the demo data says of A1001, the account of demo-user-1.
const A1001_BALANCE: &str = "The balance of account A1001 is ₹1,25,430.50.";

/// The dev identity provider, as `examples/dev_idp` runs it: one key for both tokens, and the
/// end-user mint on. Its runtime serves it while the test thread runs the binaries.
struct DevIdp {
    idp: Idp,
    _runtime: tokio::runtime::Runtime,
}

impl DevIdp {
    fn start(mint: bool) -> DevIdp {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let idp = runtime.block_on(Idp::start(&[key(0)]));
        if mint {
            idp.mint_end_user_tokens(key(0));
        }
        DevIdp {
            idp,
            _runtime: runtime,
        }
    }
}

/// `cx-webhook serve` as the dev_idp settings configure it: google-oidc for the agent, verified
/// account access for end users of the dev identity provider; `extra` adds or overrides settings.
struct Server {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(idp: &Idp, extra: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut binary = Binary::new(&dir)
            .env("AUTH_MODE", "google-oidc")
            .env("AUTH_JWKS_URL", idp.url())
            .env("AUTH_AUDIENCES", AUDIENCE)
            .env("AUTH_ALLOWED_EMAILS", AGENT)
            .env("ACCOUNT_ACCESS", "verified")
            .env("END_USER_ISSUER", idp.issuer())
            .env("END_USER_AUDIENCES", END_USER_AUDIENCE)
            .env("END_USER_JWKS_URL", idp.url());
        for (name, value) in extra {
            binary = binary.env(name, value);
        }
        let (child, address, log) = binary.start_with_log();
        // Both key caches (the agent's and the end users') have their keys before the first call.
        wait_for_lines(&log, "fetched the issuer's signing keys", 2);
        Server {
            child,
            address,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/webhook", self.address)
    }

    fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_exit(&mut self.child, Duration::from_secs(15));
        assert_eq!(status.code(), Some(0));
    }
}

fn wait_for_lines(log: &Arc<Mutex<Vec<String>>>, message: &str, n: usize) {
    let needle = format!("\"message\":\"{message}\"");
    let started = Instant::now();
    loop {
        let seen = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&needle))
            .count();
        if seen >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{n} lines `{message}` within 20 s: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cx-webhook send ARGS` with only `env` set (no credentials are looked up: the agent's token
/// is a literal one); stderr is echoed for a failing test's output.
fn send(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cx-webhook"));
    command.env_clear().envs(env.iter().copied());
    let out = command.arg("send").args(args).output().unwrap();
    eprintln!("send {args:?}: {:?}\n{}", out.status, stderr(&out));
    out
}

/// The answer of a send that succeeded (exit code 0), as JSON.
fn answer(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("stdout is the answer's JSON")
}

fn first_text(answer: &Value) -> &str {
    answer["fulfillmentResponse"]["messages"][0]["text"]["text"][0]
        .as_str()
        .unwrap_or_default()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What `env $(cat /tmp/idp.env)` gives `send`: the webhook, the agent's token, the dev IdP.
fn send_env(server: &Server, idp: &Idp, agent_token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("WEBHOOK_URL", server.url()),
        ("WEBHOOK_TOKEN", agent_token.to_owned()),
        ("DEV_IDP_URL", idp.issuer()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn send_user_shows_the_users_own_balance_and_no_one_elses() {
    let dev = DevIdp::start(true);
    let server = Server::start(&dev.idp, &[]);
    let agent_token = key(0).mint(&agent_claims());
    let env = send_env(&server, &dev.idp, &agent_token);
    let env = as_refs(&env);

    // demo-user-1 owns A1001 (the example asks for it): the balance.
    let out = send(
        &["--user", "demo-user-1", "--example", "account-balance"],
        &env,
    );
    assert_eq!(first_text(&answer(&out)), A1001_BALANCE);
    let err = stderr(&out);
    assert!(
        err.contains("signed in as demo-user-1") && err.contains("payload.userIdToken"),
        "{err}"
    );
    assert!(!err.contains("eyJ"), "a token on stderr: {err}");

    // demo-user-2 asking for A1001: the unknown-account answer, no digit of A1001's balance.
    let out = send(
        &["--user", "demo-user-2", "--example", "account-balance"],
        &env,
    );
    let body = answer(&out).to_string();
    assert!(body.contains("couldn't find account A1001"), "{body}");
    for digits in ["1,25,430", "125430", "430.50", "430.5"] {
        assert!(!body.contains(digits), "{digits} in {body}");
    }

    // demo-user-1 has two accounts: without an account number, the answer asks which.
    let out = send(&["--user", "demo-user-1", "--tag", "account.balance"], &env);
    let body = answer(&out).to_string();
    assert!(
        body.contains("A1001") && body.contains("A1002"),
        "chips: {body}"
    );
    assert!(!body.contains("1,25,430"), "{body}");

    // Nobody signed in: no balance, and the agent is told to route to sign-in.
    let out = send(&["--example", "account-balance"], &env);
    let nobody = answer(&out);
    assert!(!nobody.to_string().contains("1,25,430"), "{nobody}");
    assert_eq!(
        nobody["sessionInfo"]["parameters"]["auth_required"],
        Value::Bool(true),
        "{nobody}"
    );
    server.stop();
}

#[test]
fn send_user_puts_the_token_where_end_user_token_field_says() {
    let dev = DevIdp::start(true);
    let server = Server::start(&dev.idp, &[("END_USER_TOKEN_FIELD", "firebaseIdToken")]);
    let agent_token = key(0).mint(&agent_claims());
    let env = send_env(&server, &dev.idp, &agent_token);
    let mut env = as_refs(&env);
    let args = ["--user", "demo-user-1", "--example", "account-balance"];

    // In the default field the server does not look: not signed in.
    let out = send(&args, &env);
    assert!(!answer(&out).to_string().contains("1,25,430"));

    // The setting the server reads, given to send too.
    env.push(("END_USER_TOKEN_FIELD", "firebaseIdToken"));
    let out = send(&args, &env);
    assert_eq!(first_text(&answer(&out)), A1001_BALANCE);
    assert!(stderr(&out).contains("payload.firebaseIdToken"));
    server.stop();
}

/// A webhook that must not be called: nothing may connect to it.
struct NoCalls(TcpListener);

impl NoCalls {
    fn new() -> NoCalls {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        NoCalls(listener)
    }

    fn url(&self) -> String {
        format!("http://{}/webhook", self.0.local_addr().unwrap())
    }

    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the webhook was called: {other:?}"),
        }
    }
}

#[test]
fn send_user_without_a_token_sends_nothing_and_says_why() {
    let webhook = NoCalls::new();
    let url = webhook.url();
    let args = ["--user", "demo-user-1", "--example", "account-balance"];

    // No dev identity provider configured.
    let out = send(&args, &[("WEBHOOK_URL", &url)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("DEV_IDP_URL") && err.contains("cargo run --example dev_idp"),
        "{err}"
    );

    // Configured, but nobody answers there.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let out = send(&args, &[("WEBHOOK_URL", &url), ("DEV_IDP_URL", &gone_url)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is examples/dev_idp still running?"));

    // Something answers, but mints no token (a key-set server without the mint).
    let dev = DevIdp::start(false);
    let issuer = dev.idp.issuer();
    let out = send(&args, &[("WEBHOOK_URL", &url), ("DEV_IDP_URL", &issuer)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));

    webhook.assert_untouched();

    // The flag is documented.
    let help = send(&["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    for words in ["--user <SUBJECT>", "DEV_IDP_URL", "END_USER_TOKEN_FIELD"] {
        assert!(help.contains(words), "{words} missing:\n{help}");
    }
}
