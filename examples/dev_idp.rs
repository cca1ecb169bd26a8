//! Dev tool, not part of the service: a local stand-in for the identity providers, Google's (for
//! the service agent) and a site's sign-in (for end users), for trying `AUTH_MODE=google-oidc` and
//! `ACCOUNT_ACCESS=verified` on your machine and for the `oidc`, `deployed` and `verified` scenarios
//! of `scripts/load.sh`.
//!
//! It makes an RS256 key, serves it as a JSON Web Key Set on 127.0.0.1 (an ephemeral port), picks a
//! free port for the webhook (so it never clashes with a `serve` already on 8080), and prints the
//! settings for `serve` and `send`, with a service-agent ID token valid for an hour; then it serves
//! until Ctrl-C or SIGTERM:
//!
//! ```text
//! $ cargo run --example dev_idp -- /tmp/idp.env
//! AUTH_MODE=google-oidc
//! AUTH_JWKS_URL=http://127.0.0.1:40123/oauth2/v3/certs
//! AUTH_AUDIENCES=https://cx-webhook-abc-ew.a.run.app/webhook
//! AUTH_ALLOWED_EMAILS=service-123456789@gcp-sa-dialogflow.iam.gserviceaccount.com
//! ACCOUNT_ACCESS=verified
//! END_USER_ISSUER=http://127.0.0.1:40123
//! END_USER_AUDIENCES=carconnect-demo
//! END_USER_JWKS_URL=http://127.0.0.1:40123/oauth2/v3/certs
//! DEV_IDP_URL=http://127.0.0.1:40123
//! BIND=127.0.0.1
//! PORT=40125
//! WEBHOOK_URL=http://127.0.0.1:40125/webhook
//! WEBHOOK_TOKEN=eyJhbGciOiJSUzI1NiIs...
//! TOKEN=eyJhbGciOiJSUzI1NiIs...
//! ```
//!
//! End users: the same server signs end-user ID tokens on request, as a site's sign-in hands one to
//! its page: `POST DEV_IDP_URL/mint` with `{"sub": "demo-user-1"}` answers `{"id_token": ...}`, a
//! token of issuer `END_USER_ISSUER` for audience `END_USER_AUDIENCES`, good for an hour.
//! `cx-webhook send --user demo-user-1` asks for one there and puts it in the request's
//! `payload.userIdToken`, where Dialogflow puts the token the page passed. Anyone on this machine
//! can mint a token for any subject: that is the point of a dev tool, and why only a server given
//! these settings trusts it.
//!
//! With a FILE argument the same lines are also written to FILE atomically (to a temporary file
//! beside it, then renamed), once the key set is being served: a shell that waits for FILE to exist
//! never reads it half-written. `env $(cat FILE) cargo run -- serve` then serves with google-oidc
//! and verified account access on the free port, and `env $(cat FILE) cargo run -- send ...` calls
//! it with the token (and, with `--user`, an end user's token). The free port is found by binding
//! port 0 and letting it go, so another process could take it in between (unlikely; run the tool
//! again).
//!
//! The key lives only in this process. The token machinery is shared with the integration tests
//! (`tests/common/idp.rs`), so what the benchmark sends is what the tests prove is accepted.

#[allow(dead_code)]
#[path = "../tests/common/idp.rs"]
mod idp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes `contents` to `path` so that a reader sees either no file or the whole of it.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A port nobody listens on right now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let file = std::env::args_os().nth(1).map(PathBuf::from);
    let port = match free_port() {
        Ok(port) => port,
        Err(e) => {
            eprintln!("dev_idp: cannot find a free port: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = idp::Idp::start(&[idp::key(0)]).await;
    server.mint_end_user_tokens(idp::key(0));
    let token = idp::key(0).mint(&idp::agent_claims());
    let settings = format!(
        "AUTH_MODE=google-oidc\nAUTH_JWKS_URL={jwks}\nAUTH_AUDIENCES={aud}\n\
         AUTH_ALLOWED_EMAILS={agent}\nACCOUNT_ACCESS=verified\nEND_USER_ISSUER={issuer}\n\
         END_USER_AUDIENCES={user_aud}\nEND_USER_JWKS_URL={jwks}\nDEV_IDP_URL={issuer}\n\
         BIND=127.0.0.1\nPORT={port}\n\
         WEBHOOK_URL=http://127.0.0.1:{port}/webhook\nWEBHOOK_TOKEN={token}\nTOKEN={token}\n",
        jwks = server.url(),
        aud = idp::AUDIENCE,
        agent = idp::AGENT,
        issuer = server.issuer(),
        user_aud = idp::END_USER_AUDIENCE,
    );
    if let Some(file) = &file
        && let Err(e) = write_atomically(file, &settings)
    {
        eprintln!("dev_idp: cannot write {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(settings.as_bytes());
    let _ = out.flush();
    drop(out);

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("dev_idp: cannot handle SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
