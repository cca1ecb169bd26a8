//! In-process cost of one webhook call without the network: parse the request, dispatch it, encode the
//! bounded answer. Run with `cargo bench`; the end-to-end figures come from `scripts/load.sh`.

use std::time::Duration;

use cx_webhook::cx::{
    MAX_RESPONSE_BYTES, RichContent, RichElement, WebhookRequest, WebhookResponse,
};
use cx_webhook::handlers::{Dispatcher, TOO_LARGE_TEXT};
use divan::Bencher;

fn main() {
    divan::main();
}

const UNKNOWN_TAG: &[u8] = include_bytes!("../tests/fixtures/unknown-tag.json");
const BOOKING_VALIDATE: &[u8] = include_bytes!("../tests/fixtures/booking-validate-bad-date.json");
const ACCOUNT_BALANCE: &[u8] = include_bytes!("../tests/fixtures/account-balance.json");

/// A fixture body by name (names keep divan's table readable).
fn body(name: &str) -> &'static [u8] {
    match name {
        "booking-validate" => BOOKING_VALIDATE,
        "account-balance" => ACCOUNT_BALANCE,
        _ => UNKNOWN_TAG,
    }
}

#[divan::bench(args = ["unknown-tag", "booking-validate", "account-balance"])]
fn parse(bencher: Bencher, name: &str) {
    let body = body(name);
    bencher
        .bench(|| WebhookRequest::from_slice(divan::black_box(body)).map(|r| r.session_id().len()));
}

#[divan::bench]
fn parse_dispatch_serialize_fallback(bencher: Bencher) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dispatcher = Dispatcher::new(vec![]).unwrap();
    bencher.bench_local(|| {
        runtime.block_on(async {
            let request = WebhookRequest::from_slice(divan::black_box(UNKNOWN_TAG)).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let out = dispatcher.dispatch(request, deadline).await;
            out.response
                .to_bounded_json(MAX_RESPONSE_BYTES, TOO_LARGE_TEXT)
                .0
                .len()
        })
    });
}

#[divan::bench]
fn serialize_rich_answer(bencher: Bencher) {
    let items: Vec<RichElement> = (0..5)
        .map(|i| RichElement::list_item(format!("Dealer {i}"), Some("Pune, 411001".into())))
        .collect();
    let response = WebhookResponse::new()
        .text("Here are the dealers near you.")
        .rich_content(RichContent::new().card(items))
        .set_param("dealer_options", "D-PUN-01,D-PUN-02");
    bencher.bench(|| {
        divan::black_box(&response)
            .to_bounded_json(MAX_RESPONSE_BYTES, TOO_LARGE_TEXT)
            .0
            .len()
    });
}

/// The floor of parsing a request body, to compare [`parse`] with: only what `account.balance`
/// reads (the tag and the session, strings borrowed from the body; the session parameters are
/// stepped over, as a lazily parsed raw value would be). What [`parse`] costs beyond this is the owned model (strings and maps allocated, then
/// freed).
mod minimal {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Request<'a> {
        #[serde(borrow, default)]
        pub fulfillment_info: Option<Fulfillment<'a>>,
        #[serde(borrow, default)]
        pub session_info: Option<Session<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Fulfillment<'a> {
        #[serde(borrow, default)]
        pub tag: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Session<'a> {
        #[serde(borrow, default)]
        pub session: Option<Cow<'a, str>>,
        #[serde(default)]
        pub parameters: Option<serde::de::IgnoredAny>,
    }
}

#[divan::bench]
fn parse_floor_borrowed_minimal(bencher: Bencher) {
    bencher.bench(|| {
        let text = std::str::from_utf8(divan::black_box(ACCOUNT_BALANCE)).unwrap();
        let request: minimal::Request = serde_json::from_str(text).unwrap();
        let tag = request
            .fulfillment_info
            .and_then(|f| f.tag)
            .map_or(0, |t| t.len());
        let session = request.session_info.map_or(0, |s| {
            s.session.map_or(0, |s| s.len()) + usize::from(s.parameters.is_some())
        });
        tag + session
    });
}

#[divan::bench]
fn parse_floor_scan_only(bencher: Bencher) {
    bencher.bench(|| {
        serde_json::from_slice::<serde::de::IgnoredAny>(divan::black_box(ACCOUNT_BALANCE)).is_ok()
    });
}
