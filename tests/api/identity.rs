//! End-user identity over real HTTP (issue 12): account data reaches only the end user who proved
//! they own the account, with a signed ID token (chat) or a PIN grant (voice); every refusal leaks
//! nothing; PIN guessing locks the account across instances sharing one store.

use crate::common;

use std::sync::Arc;

use common::idp::{END_USER_AUDIENCE, Idp, TestKey, end_user_claims, key};
use common::{CxRequest, TestApp, spawn_app_from, until};
use cx_webhook::App;
use cx_webhook::auth::end_user::EndUserSettings;
use cx_webhook::config::{AccountAccess, Config, Secret};
use cx_webhook::handlers::access::{CANNOT_VERIFY_TEXT, SIGN_IN_TEXT, VERIFY_TEXT};
use cx_webhook::handlers::account_verify::WRONG_PIN_TEXT;
use cx_webhook::handlers::{self, Dispatcher};
use cx_webhook::store::pins::MAX_PIN_FAILURES;
use cx_webhook::store::{Create, Store};
use serde_json::{Value, json};

const SESSION_KEY: &str = "a-session-signing-key-of-at-least-32-bytes!";

/// The verified-access configuration trusting `idp`'s end-user tokens, with a grant key.
fn verified(idp: &Idp) -> Config {
    let mut config = Config::local();
    config.identity.access = AccountAccess::Verified;
    config.identity.session_key = Some(Secret::new(SESSION_KEY));
    config.identity.end_user = Some(EndUserSettings::new(
        idp.issuer(),
        vec![END_USER_AUDIENCE.into()],
        Some(idp.url()),
    ));
    config
}

/// A server for `config` over the database file at `path` (opened anew: its own connections),
/// once it holds the end user's key set.
async fn serve(config: Config, path: &std::path::Path) -> TestApp {
    let (t, deps) = serve_unready(config, path).await;
    if let Some(users) = &deps.identity.end_users {
        until("the end user's key set is in", || users.keys().has_keys()).await;
    }
    t
}

/// [`serve`] without waiting for the key set.
async fn serve_unready(config: Config, path: &std::path::Path) -> (TestApp, Arc<handlers::Deps>) {
    let (store, _) = Store::open(path, Create::IfMissing { seed: true }).unwrap();
    let deps = Arc::new(App::deps(&config, store.clone()).await.unwrap());
    let app = App::new(config, Dispatcher::new(handlers::table(&deps)).unwrap()).unwrap();
    (spawn_app_from(app, store).await, deps)
}

fn user_token(idp: &Idp, signer: &TestKey, subject: &str) -> String {
    signer.mint(&end_user_claims(&idp.issuer(), subject))
}

/// account.balance with session parameters `params`, in session `s-chat`.
fn balance_request(params: Value) -> CxRequest {
    CxRequest::tag("account.balance")
        .params(params)
        .session("s-chat")
}

fn params(v: &Value) -> &Value {
    &v["sessionInfo"]["parameters"]
}

#[tokio::test]
async fn a_signed_in_user_sees_their_own_accounts_and_no_one_elses() {
    let idp = Idp::start(&[key(0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve(verified(&idp), &dir.path().join("cx.db")).await;
    let user1 = user_token(&idp, key(0), "demo-user-1");
    let user2 = user_token(&idp, key(0), "demo-user-2");

    let a = app
        .post(balance_request(json!({"account_id": "A1001"})).user_token(&user1))
        .await;
    assert_eq!(a.texts(), ["The balance of account A1001 is ₹1,25,430.50."]);

    // demo-user-2 owns A1003, not A1001: the unknown-account answer, no digit of the balance.
    let a = app
        .post(balance_request(json!({"account_id": "A1001"})).user_token(&user2))
        .await;
    let body = a.json().to_string();
    assert_eq!(
        a.texts(),
        ["I couldn't find account A1001. Could you check the number and tell me again?"]
    );
    for leak in ["125430", "1,25,430", "430.50"] {
        assert!(!body.contains(leak), "{body}");
    }
    assert!(params(&a.json()).get("account_balance").is_none());

    // No account named: one owned account is used, several are offered as chips.
    let a = app
        .post(balance_request(json!({})).user_token(&user2))
        .await;
    assert!(
        a.texts()[0].starts_with("The balance of account A1003 is "),
        "{:?}",
        a.texts()
    );
    let a = app
        .post(balance_request(json!({})).user_token(&user1))
        .await;
    assert_eq!(
        a.texts(),
        ["Which account would you like me to look at: A1001 or A1002?"]
    );
}

#[tokio::test]
async fn without_proof_there_is_no_account_data() {
    let idp = Idp::start(&[key(0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve(verified(&idp), &dir.path().join("cx.db")).await;
    let forged = user_token(&idp, key(1), "demo-user-1"); // another key, same kid
    let mut other_issuer = end_user_claims("https://idp.example", "demo-user-1");
    other_issuer["aud"] = json!(END_USER_AUDIENCE);
    let cases = [
        ("no token", json!({})),
        ("forged token", json!({"userIdToken": forged})),
        (
            "another issuer",
            json!({"userIdToken": key(0).mint(&other_issuer)}),
        ),
        ("junk", json!({"userIdToken": "not.a.token"})),
    ];
    for (what, payload) in cases {
        let a = app
            .post(balance_request(json!({"account_id": "A1001"})).payload(payload))
            .await;
        assert_eq!(a.texts(), [SIGN_IN_TEXT], "{what}");
        assert_eq!(params(&a.json())["auth_required"], true, "{what}");
        assert!(!a.json().to_string().contains("430.50"), "{what}");
    }
    // A session parameter proves nothing; on the phone the answer offers the PIN step.
    let a = app
        .post(balance_request(json!({"account_id": "A1001", "account_grant": "g1.A1001.9999999999.AAAA", "user": "demo-user-1"})).caller_id("+919876501001"))
        .await;
    assert_eq!(a.texts(), [VERIFY_TEXT]);
}

#[tokio::test]
async fn a_token_that_cannot_be_checked_gets_try_again_not_sign_in() {
    // The issuer's key server is down from the start: no keys, so a good token cannot be checked.
    let idp = Idp::start(&[key(0)]).await;
    idp.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let (app, deps) = serve_unready(verified(&idp), &dir.path().join("cx.db")).await;
    let token = user_token(&idp, key(0), "demo-user-1");
    let a = app
        .post(balance_request(json!({"account_id": "A1001"})).user_token(&token))
        .await;
    assert_eq!(a.texts(), [CANNOT_VERIFY_TEXT]);
    assert!(
        params(&a.json()).get("auth_required").is_none(),
        "{}",
        a.json()
    );
    assert!(!a.json().to_string().contains("430.50"));

    // Back up: the same token is checked and answered for.
    idp.set_down(false);
    let users = deps.identity.end_users.as_ref().unwrap();
    until("the end user's key set is in", || users.keys().has_keys()).await;
    let a = app
        .post(balance_request(json!({"account_id": "A1001"})).user_token(&token))
        .await;
    assert_eq!(a.texts(), ["The balance of account A1001 is ₹1,25,430.50."]);
}

/// account.verify with `pin` for `account` in `session`; returns the answer's JSON.
async fn verify(app: &TestApp, account: &str, pin: &str, session: &str) -> Value {
    let request = CxRequest::tag("account.verify")
        .param("account_id", account)
        .param("account_pin", pin)
        .caller_id("+910000000000")
        .session(session);
    app.post(request).await.json()
}

#[tokio::test]
async fn the_right_pin_earns_a_grant_for_this_session_and_this_account_only() {
    let idp = Idp::start(&[key(0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve(verified(&idp), &dir.path().join("cx.db")).await;
    let voice = json!({"telephony": {"caller_id": "+919876501003"}});

    let v = verify(&app, "A1003", "1234", "s-voice").await;
    let grant = params(&v)["account_grant"].as_str().unwrap().to_owned();
    assert!(
        params(&v)["account_pin"].is_null(),
        "the PIN never stays: {v}"
    );
    assert!(!v.to_string().contains("1234\""), "{v}");

    let with_grant = |grant: &str, account: &str, session: &str| {
        CxRequest::tag("account.balance")
            .param("account_id", account)
            .param("account_grant", grant)
            .payload(voice.clone())
            .session(session)
    };
    let a = app.post(with_grant(&grant, "A1003", "s-voice")).await;
    assert!(
        a.texts()[0].starts_with("The balance of account A1003 is "),
        "{:?}",
        a.texts()
    );
    // The grant names one account...
    let a = app.post(with_grant(&grant, "A1001", "s-voice")).await;
    assert!(
        a.texts()[0].starts_with("I couldn't find account A1001"),
        "{:?}",
        a.texts()
    );
    // ...holds in its own session only, and not once edited.
    let a = app.post(with_grant(&grant, "A1003", "s-other")).await;
    assert_eq!(a.texts(), [VERIFY_TEXT]);
    let tampered = grant.replace("A1003", "A1001");
    let a = app.post(with_grant(&tampered, "A1001", "s-voice")).await;
    assert_eq!(a.texts(), [VERIFY_TEXT]);

    // A wrong PIN and an unknown account read the same, and the PIN is asked for again.
    for (account, pin) in [("A1004", "9999"), ("A9999", "1234")] {
        let v = verify(&app, account, pin, "s-wrong").await;
        assert_eq!(
            v["fulfillmentResponse"]["messages"][0]["text"]["text"][0],
            WRONG_PIN_TEXT
        );
        assert!(params(&v).get("account_grant").is_none());
    }
}

#[tokio::test]
async fn twenty_concurrent_wrong_pins_across_two_instances_lock_the_account() {
    let idp = Idp::start(&[key(0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cx.db");
    let apps = Arc::new([
        serve(verified(&idp), &path).await,
        serve(verified(&idp), &path).await,
    ]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let apps = apps.clone();
        tasks.push(tokio::spawn(async move {
            let v = verify(&apps[i % 2], "A1005", "0000", &format!("s-{i}")).await;
            v["fulfillmentResponse"]["messages"][0]["text"]["text"][0]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let (mut wrong, mut locked) = (0, 0);
    for t in tasks {
        let text = t.await.unwrap();
        if text == WRONG_PIN_TEXT {
            wrong += 1;
        } else {
            assert!(text.starts_with("Too many wrong PINs"), "{text}");
            locked += 1;
        }
    }
    // At most five PINs were ever checked, the fifth miss locks, so at most four read "wrong".
    assert_eq!(wrong + locked, 20);
    assert!(wrong < MAX_PIN_FAILURES, "{wrong} wrong answers");
    // The lock holds on both instances, even for the right PIN.
    for app in apps.iter() {
        let v = verify(app, "A1005", "1234", "s-late").await;
        let text = v["fulfillmentResponse"]["messages"][0]["text"]["text"][0]
            .as_str()
            .unwrap();
        assert!(text.starts_with("Too many wrong PINs"), "{text}");
        assert!(params(&v).get("account_grant").is_none());
    }
}
