//! Dev tool, not part of the service: a local stand-in for Google's key set, for trying
//! `AUTH_MODE=google-oidc` on your machine and for the `oidc` scenarios of `scripts/load.sh`.
//!
//! It makes an RS256 key, serves it as a JSON Web Key Set on 127.0.0.1 (an ephemeral port), prints
//! the settings the webhook needs and a service-agent ID token valid for an hour, then serves until
//! Ctrl-C or SIGTERM:
//!
//! ```text
//! $ cargo run --example dev_idp
//! AUTH_JWKS_URL=http://127.0.0.1:40123/oauth2/v3/certs
//! AUTH_AUDIENCES=https://cx-webhook-abc-ew.a.run.app/webhook
//! AUTH_ALLOWED_EMAILS=service-123456789@gcp-sa-dialogflow.iam.gserviceaccount.com
//! TOKEN=eyJhbGciOiJSUzI1NiIs...
//! ```
//!
//! The key lives only in this process. The token machinery is shared with the integration tests
//! (`tests/common/idp.rs`), so what the benchmark sends is what the tests prove is accepted.

#[allow(dead_code)]
#[path = "../tests/common/idp.rs"]
mod idp;

use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = idp::Idp::start(&[idp::key(0)]).await;
    let token = idp::key(0).mint(&idp::agent_claims());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "AUTH_JWKS_URL={}", server.url());
    let _ = writeln!(out, "AUTH_AUDIENCES={}", idp::AUDIENCE);
    let _ = writeln!(out, "AUTH_ALLOWED_EMAILS={}", idp::AGENT);
    let _ = writeln!(out, "TOKEN={token}");
    let _ = out.flush();
    drop(out);

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
