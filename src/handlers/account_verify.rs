//! `account.verify`: the voice channel's step-up. The caller gives an account number (or the call's
//! caller id finds it, which is never proof by itself) and keys in the account's PIN; the right PIN
//! earns a session grant (`account_grant`) that the account handlers accept for the rest of this
//! session.
//!
//! - The PIN is checked against the account's salted argon2id hash on the blocking pool.
//! - Attempts are reserved before the check and counted in the writable store
//!   ([`crate::store::pins`], in the same backend as the bookings: the SQLite file or PostgreSQL):
//!   five wrong PINs lock the account for 15 minutes, across every instance sharing that store; a
//!   locked account says when to try again.
//! - A wrong PIN and an unknown account get the same answer (`account_pin` marked INVALID, with a
//!   re-prompt), so the tag cannot be used to find which account numbers exist.
//! - The PIN never stays in the session: it is cleared (or invalidated) in every answer. Neither the
//!   PIN, the grant nor the phone number is ever logged.
//!
//! Without `SESSION_SIGNING_KEY` there are no grants, and the tag says phone verification is
//! unavailable.

use std::sync::Arc;

use jiff::Timestamp;

use crate::cx::WebhookResponse;
use crate::domain::{AccountId, Pin, home_time_zone};
use crate::identity::grant::GRANT_PARAM;
use crate::store::pins::Attempt;

use super::access::{ACCOUNT_PARAMS, AUTH_REQUIRED_PARAM};
use super::{Call, Deps, HandlerError, Reply, ask, chips, reject};

/// The parameter holding the PIN.
pub const PIN_PARAM: &str = "account_pin";

/// Said when the PIN is wrong or the account unknown.
pub const WRONG_PIN_TEXT: &str =
    "That account number and PIN don't match. Please check them and key in your PIN again.";

/// The decoy hash checked for an account without one (see [`crate::domain::pin::decoy_hash`]).
static NO_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(crate::domain::pin::decoy_hash);

/// `account.verify`.
pub async fn verify(call: Call, deps: Arc<Deps>) -> Reply {
    let Some(grants) = &deps.identity.grants else {
        return Ok(WebhookResponse::new()
            .text(
                "Sorry, I can't verify you by phone right now. Please use the app or the website \
                 to see your account.",
            )
            .delete_param(PIN_PARAM));
    };
    let account = which_account(&call, &deps)?;
    let params = call.params();
    let Some(said) = params.text(PIN_PARAM).ok().flatten() else {
        return Ok(WebhookResponse::new()
            .text("Please key in the PIN of your account.")
            .set_param("account_id", account.as_str()));
    };
    let Some(pin) = Pin::parse(&said) else {
        let answer =
            WebhookResponse::new().text("A PIN is 4 to 8 digits. Please key in your PIN again.");
        return Err(ask(reject(&call, answer, PIN_PARAM)));
    };
    let now = Timestamp::now();
    if let Attempt::Locked { until } = deps.pins.begin(&account, now, call.deadline).await? {
        return Ok(locked(&call, until));
    }
    let stored = deps.store.accounts().pin_hash(&account)?;
    let matched = tokio::task::spawn_blocking(move || {
        crate::domain::pin::verify(&pin, stored.as_deref().unwrap_or(&NO_HASH))
    })
    .await
    .map_err(|e| HandlerError::new("PIN check", e))?;
    let locked_now = deps
        .pins
        .finish(&account, matched, now, call.deadline)
        .await?;
    if matched {
        tracing::info!("account verified by PIN");
        let session = &call.request.session_info.session;
        return Ok(WebhookResponse::new()
            .text("Thank you, you're verified. What would you like to know about your account?")
            .set_param("account_id", account.as_str())
            .set_param(GRANT_PARAM, grants.issue(session, &account, now))
            .set_param(AUTH_REQUIRED_PARAM, false)
            .delete_param(PIN_PARAM));
    }
    tracing::warn!("wrong PIN");
    if let Some(until) = locked_now {
        return Ok(locked(&call, until));
    }
    Err(ask(reject(
        &call,
        WebhookResponse::new().text(WRONG_PIN_TEXT),
        PIN_PARAM,
    )))
}

/// The account named by `account_id` (or `user_id`), else found from the caller id.
fn which_account(call: &Call, deps: &Deps) -> Reply<AccountId> {
    let params = call.params();
    if let Some(name) = params.first_present(ACCOUNT_PARAMS) {
        let text = params.text(name).ok().flatten().unwrap_or_default();
        return AccountId::parse(&text).ok_or_else(|| {
            let answer = WebhookResponse::new().text(
                "That doesn't look like an account number. Account numbers are an A followed by \
                 digits, like A1001. What's your account number?",
            );
            ask(reject(call, answer, name))
        });
    }
    let caller = call
        .request
        .payload
        .as_ref()
        .and_then(|p| p.get("telephony"))
        .and_then(|t| t.get("caller_id"))
        .and_then(|c| c.as_str())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let found = match caller {
        Some(phone) => deps.store.accounts().by_phone(phone)?,
        None => Vec::new(),
    };
    match found.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ask(WebhookResponse::new().text(
            "What's your account number? It's an A followed by digits, like A1001.",
        ))),
        several => {
            let names: Vec<String> = several.iter().map(ToString::to_string).collect();
            Err(ask(WebhookResponse::new()
                .text(format!(
                    "Which of your accounts would you like to use: {}?",
                    names.join(" or ")
                ))
                .rich_content(chips(names))))
        }
    }
}

/// The answer for a locked account: when to try again; the PIN cleared.
fn locked(call: &Call, until: Timestamp) -> WebhookResponse {
    let when = until
        .to_zoned_datetime(home_time_zone())
        .strftime("%H:%M")
        .to_string();
    let answer = WebhookResponse::new().text(format!(
        "Too many wrong PINs: this account is locked for phone verification until {when} (India \
         time). Please try again then, or use the app or the website."
    ));
    reject(call, answer, PIN_PARAM).set_param(AUTH_REQUIRED_PARAM, true)
}
