//! Who may see which account: the one question every account handler asks first.
//!
//! With `ACCOUNT_ACCESS=open` the account is whatever `account_id` (alias `user_id`) names. With
//! `verified` (the default) the end user must prove who they are, and only their own accounts are
//! answered for:
//! - **web and app channels**: a signed end-user ID token in `WebhookRequest.payload.<field>`
//!   (`END_USER_TOKEN_FIELD`, default `userIdToken`), verified by signature; the accounts are those
//!   its subject owns;
//! - **voice**: a session grant (`account_grant`) that `account.verify` issued after the right PIN;
//!   it names one account and holds only in its own session.
//!
//! Session parameters alone prove nothing: any detectIntent caller can set them. Without proof the
//! answer holds no account data: "please sign in" (chat) or "let's verify you" (voice), with session
//! parameter `auth_required: true` so the agent can route to a sign-in or PIN page. An account the
//! user does not own gets the very answer an unknown account gets, so ownership leaks nothing. Logs
//! name a user only by pseudonym.
//!
//! When the issuer's keys cannot be had (its key server down and nothing cached), a token cannot be
//! checked either way: the answer is "try again shortly", still without data, and without
//! `auth_required` (signing in again would not help).

use jiff::Timestamp;

use crate::auth::AuthFailure;
use crate::config::AccountAccess;
use crate::cx::WebhookResponse;
use crate::domain::{Account, AccountId, Subject};
use crate::identity::grant::GRANT_PARAM;

use super::{Call, Deps, Reply, ask, chips, reject};

/// Parameter names that may carry the account number, in order of preference.
pub const ACCOUNT_PARAMS: &[&str] = &["account_id", "user_id"];

/// The session parameter telling the agent that proof of identity is needed.
pub const AUTH_REQUIRED_PARAM: &str = "auth_required";

/// Said on chat when there is no proof of identity.
pub const SIGN_IN_TEXT: &str = "Please sign in first, so I can show your account details safely.";

/// Said on the phone when there is no proof of identity.
pub const VERIFY_TEXT: &str =
    "Before I can share account details, let's verify you. I'll need your account number and PIN.";

/// Said when an end-user token came but the issuer's keys cannot be fetched to check it.
pub const CANNOT_VERIFY_TEXT: &str =
    "Sorry, I can't confirm your sign-in right now. Please try again in a few minutes.";

/// What proved who the end user is.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A verified end-user ID token's subject.
    User(Subject),
    /// A PIN session grant for one account.
    Grant(AccountId),
}

/// Whether the call comes through a phone gateway (telephony payload present).
pub fn is_voice(call: &Call) -> bool {
    call.request
        .payload
        .as_ref()
        .is_some_and(|p| p.contains_key("telephony"))
}

/// The answer when proof of identity is missing: no account data, `auth_required: true`.
pub fn identity_required(call: &Call) -> WebhookResponse {
    let text = if is_voice(call) {
        VERIFY_TEXT
    } else {
        SIGN_IN_TEXT
    };
    WebhookResponse::new()
        .text(text)
        .set_param(AUTH_REQUIRED_PARAM, true)
}

/// The proof of identity the call carries, if any. A token or grant that does not verify counts
/// as none (and is logged with its reason, never its value); a token that cannot be checked for
/// want of the issuer's keys ends the call with [`CANNOT_VERIFY_TEXT`].
pub async fn principal(call: &Call, deps: &Deps) -> Reply<Option<Principal>> {
    let identity = &deps.identity;
    if let Some(verifier) = &identity.end_users {
        let token = call
            .request
            .payload
            .as_ref()
            .and_then(|p| p.get(verifier.token_field()))
            .and_then(|v| v.as_str());
        if let Some(token) = token {
            match verifier.verify(token).await {
                Ok(user) => match Subject::new(&user.subject) {
                    Some(subject) => {
                        tracing::debug!(user = %identity.pseudonyms.of(&subject), "end user verified");
                        return Ok(Some(Principal::User(subject)));
                    }
                    None => tracing::warn!("end-user token has an unusable subject"),
                },
                Err(failure @ AuthFailure::KeysUnavailable { .. }) => {
                    tracing::warn!(reason = failure.code(), "end-user token not checked");
                    return Err(ask(WebhookResponse::new().text(CANNOT_VERIFY_TEXT)));
                }
                Err(failure) => {
                    tracing::warn!(reason = failure.code(), "end-user token refused");
                }
            }
        }
    }
    if let Some(grants) = &identity.grants
        && let Ok(Some(grant)) = call.params().text(GRANT_PARAM)
    {
        let session = &call.request.session_info.session;
        match grants.verify(&grant, session, Timestamp::now()) {
            Ok(account) => return Ok(Some(Principal::Grant(account))),
            Err(e) => tracing::warn!(reason = %e, "session grant refused"),
        }
    }
    Ok(None)
}

/// The account the call may read; any other case ends the call with what to say.
pub async fn account_for(call: &Call, deps: &Deps) -> Reply<Account> {
    let asked = asked_account(call)?;
    let principal = match deps.identity.access {
        AccountAccess::Open => None,
        // Boxed: verifying a sign-in is most of this future's size, and every account handler's
        // future holds it; unboxed they outgrow the allocator's fast size classes (1,832 bytes).
        AccountAccess::Verified => match Box::pin(principal(call, deps)).await? {
            Some(p) => Some(p),
            None => return Err(ask(identity_required(call))),
        },
    };
    let id = match (principal, asked) {
        (None, Some((id, _))) => id,
        (None, None) => {
            return Err(ask(WebhookResponse::new().text(
                "Which account would you like me to look at? Account numbers look like A1001.",
            )));
        }
        (Some(Principal::Grant(granted)), None) => granted,
        (Some(Principal::Grant(granted)), Some((id, name))) => {
            if id != granted {
                return Err(not_found(call, &id, name));
            }
            id
        }
        (Some(Principal::User(subject)), asked) => {
            let owned = deps.store.accounts().owned_by(&subject)?;
            match (asked, owned.as_slice()) {
                (Some((id, name)), owned) if !owned.contains(&id) => {
                    return Err(not_found(call, &id, name));
                }
                (Some((id, _)), _) => id,
                (None, [only]) => only.clone(),
                (None, []) => {
                    return Err(ask(WebhookResponse::new().text(
                        "I can't find an account linked to your sign-in. Please contact us to \
                         link one.",
                    )));
                }
                (None, several) => {
                    let names: Vec<String> = several.iter().map(ToString::to_string).collect();
                    return Err(ask(WebhookResponse::new()
                        .text(format!(
                            "Which account would you like me to look at: {}?",
                            names.join(" or ")
                        ))
                        .rich_content(chips(names))));
                }
            }
        }
    };
    let found = deps.store.accounts().get(&id)?;
    found.ok_or_else(|| not_found(call, &id, ACCOUNT_PARAMS[0]))
}

/// The account number the call names (and the parameter that named it), if any; a malformed one
/// ends the call with a question.
fn asked_account(call: &Call) -> Reply<Option<(AccountId, &'static str)>> {
    let params = call.params();
    let Some(name) = params.first_present(ACCOUNT_PARAMS) else {
        return Ok(None);
    };
    let name = ACCOUNT_PARAMS
        .iter()
        .copied()
        .find(|n| *n == name)
        .unwrap_or(ACCOUNT_PARAMS[0]);
    let text = params.text(name).ok().flatten().unwrap_or_default();
    match AccountId::parse(&text) {
        Some(id) => Ok(Some((id, name))),
        None => {
            let answer = WebhookResponse::new().text(
                "That doesn't look like an account number. Account numbers are an A followed by \
                 digits, like A1001. Which account is yours?",
            );
            Err(ask(reject(call, answer, name)))
        }
    }
}

/// The answer for an account that does not exist *or is not the caller's*: the same words, so
/// ownership cannot be probed.
fn not_found(call: &Call, id: &AccountId, param: &str) -> super::Stop {
    let answer = WebhookResponse::new().text(format!(
        "I couldn't find account {id}. Could you check the number and tell me again?"
    ));
    ask(reject(call, answer, param))
}
