//! Adding a tag from outside the crate, through the library's public API: a `dealer.hours` tag that
//! reads the `dealer_id` parameter and answers with the dealer's opening hours from the catalog.
//!
//! It builds the standard table, adds one route, serves it on an ephemeral loopback port, posts one
//! `WebhookRequest` over real HTTP, prints the answer and stops. CI runs it
//! (`cargo run --example custom_tag`) so the extension path in the README cannot rot. Inside the
//! crate the same handler would be `src/handlers/dealer_hours.rs`, `pub mod dealer_hours;` and one
//! line in `handlers::table`, plus a test.

use std::sync::Arc;

use bytes::Bytes;
use cx_webhook::cx::WebhookResponse;
use cx_webhook::domain::DealerId;
use cx_webhook::handlers::{Call, Deps, Dispatcher, Reply, Route, ask, reject, table};
use cx_webhook::store::{Create, Store};
use cx_webhook::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `dealer.hours`: when the dealer named by `dealer_id` is open.
async fn dealer_hours(call: Call, deps: Arc<Deps>) -> Reply {
    let said = call.params().text("dealer_id").ok().flatten();
    let Some(id) = said.as_deref().and_then(DealerId::parse) else {
        return Err(ask(
            WebhookResponse::new().text("Which dealer? Ids look like D-PUN-01.")
        ));
    };
    let Some(dealer) = deps.store.catalog().dealer(&id)? else {
        let answer = WebhookResponse::new().text(format!("I don't know the dealer {id}."));
        return Err(ask(reject(&call, answer, "dealer_id")));
    };
    Ok(WebhookResponse::new().text(format!(
        "{} is open {}.",
        dealer.name,
        dealer.hours.summary()
    )))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (store, _) = Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true })?;
    let config = Config::local(); // 127.0.0.1:0, authentication off
    let deps = Arc::new(App::deps(&config, store).await?);

    let mut routes = table(&deps);
    routes.push(Route::new("dealer.hours", deps.with(dealer_hours)));
    let app = Arc::new(App::new(config, Dispatcher::new(routes)?)?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhook", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cx_webhook::server::run(listener, app, async {
        let _ = stopped.await;
    }));

    let request = serde_json::json!({
        "detectIntentResponseId": "example-1",
        "fulfillmentInfo": {"tag": "dealer.hours"},
        "sessionInfo": {
            "session": "projects/p/locations/global/agents/a/sessions/example",
            "parameters": {"dealer_id": "d-pun-01"}
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let answer = client
        .request(
            http::Request::post(&url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&request)?)))?,
        )
        .await?;
    let status = answer.status();
    let body = answer.into_body().collect().await?.to_bytes();
    println!("POST {url} -> {status}\n{}", String::from_utf8_lossy(&body));

    let _ = stop.send(());
    server.await??;
    let text = serde_json::from_slice::<serde_json::Value>(&body)?["fulfillmentResponse"]["messages"]
        [0]["text"]["text"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !status.is_success() || !text.contains(" is open ") {
        return Err(format!("unexpected answer: {status} {text:?}").into());
    }
    Ok(())
}
