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

/// A fixture body by name (names keep divan's table readable).
fn body(name: &str) -> &'static [u8] {
    match name {
        "booking-validate" => BOOKING_VALIDATE,
        _ => UNKNOWN_TAG,
    }
}

#[divan::bench(args = ["unknown-tag", "booking-validate"])]
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
