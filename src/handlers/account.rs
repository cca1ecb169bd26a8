//! `account.balance`, `account.transactions`, and the seed guide's `database-query` alias that picks
//! one of them by `query_type`.
//!
//! The account comes from `account_id` (alias `user_id`) and nothing else: a handler reads only the
//! account its parameters name, so one customer's data can never reach another's conversation. A
//! missing, malformed or unknown account number gets an answer that says what to give instead, and the
//! parameter is rejected so the agent asks again.

use std::sync::Arc;

use crate::cx::{RichContent, RichElement, WebhookResponse};
use crate::domain::vocabulary::{self, AccountQuery};
use crate::domain::{Account, AccountId, TransactionLimit, home_time_zone};

use super::{Call, Deps, Reply, ask, chips, reject};

/// Parameter names that may carry the account number, in order of preference.
const ACCOUNT_PARAMS: &[&str] = &["account_id", "user_id"];

/// The account the call names; any other case ends the call with the question to ask.
pub fn find_account(call: &Call, deps: &Deps) -> Reply<Account> {
    let params = call.params();
    let Some(name) = params.first_present(ACCOUNT_PARAMS) else {
        return Err(ask(WebhookResponse::new().text(
            "Which account would you like me to look at? Account numbers look like A1001.",
        )));
    };
    let text = params.text(name).ok().flatten().unwrap_or_default();
    let Some(id) = AccountId::parse(&text) else {
        let answer = WebhookResponse::new().text(
            "That doesn't look like an account number. Account numbers are an A followed by \
             digits, like A1001. Which account is yours?",
        );
        return Err(ask(reject(call, answer, name)));
    };
    deps.store.accounts().get(&id)?.ok_or_else(|| {
        let answer = WebhookResponse::new().text(format!(
            "I couldn't find account {id}. Could you check the number and tell me again?"
        ));
        ask(reject(call, answer, name))
    })
}

/// `account.balance`: the account's current balance.
pub async fn balance(call: Call, deps: Arc<Deps>) -> Reply {
    balance_now(&call, &deps)
}

fn balance_now(call: &Call, deps: &Deps) -> Reply {
    let account = find_account(call, deps)?;
    Ok(WebhookResponse::new()
        .text(format!(
            "The balance of account {} is {}.",
            account.id, account.balance
        ))
        .set_param("account_id", account.id.as_str())
        .set_param("account_balance", account.balance.decimal())
        .set_param("currency", account.balance.currency.code()))
}

/// `account.transactions`: the newest transactions, as text lines and a Messenger list.
pub async fn transactions(call: Call, deps: Arc<Deps>) -> Reply {
    transactions_now(&call, &deps)
}

fn transactions_now(call: &Call, deps: &Deps) -> Reply {
    let account = find_account(call, deps)?;
    let (limit, lowered) = TransactionLimit::clamp(call.params().int("limit").ok().flatten());
    let txns = deps
        .store
        .accounts()
        .recent_transactions(&account.id, limit)?;
    let response = WebhookResponse::new().set_param("account_id", account.id.as_str());
    if txns.is_empty() {
        return Ok(response.text(format!(
            "There are no transactions on account {} yet.",
            account.id
        )));
    }
    let tz = home_time_zone();
    let mut lines = Vec::with_capacity(txns.len() + 2);
    let mut items = Vec::with_capacity(txns.len() * 2);
    let heading = if txns.len() == 1 {
        format!("The last transaction on account {}:", account.id)
    } else {
        format!(
            "The last {} transactions on account {}:",
            txns.len(),
            account.id
        )
    };
    if lowered {
        lines.push(format!(
            "(I can show at most {} at a time.)",
            TransactionLimit::MAX.get()
        ));
    }
    lines.push(heading.clone());
    for t in &txns {
        let day = t
            .posted_at
            .to_zoned_datetime(tz.clone())
            .strftime("%-d %b %Y")
            .to_string();
        lines.push(format!("• {day}: {} {}", t.description, t.amount));
        if !items.is_empty() {
            items.push(RichElement::Divider);
        }
        items.push(RichElement::list_item(
            t.description.clone(),
            Some(format!("{day} · {}", t.amount)),
        ));
    }
    let mut card = vec![RichElement::info(heading, None)];
    card.extend(items);
    Ok(response
        .text(lines.join("\n"))
        .rich_content(RichContent::new().card(card)))
}

/// The seed guide's `database-query` tag: `query_type` = `account_balance` | `recent_transactions`.
pub async fn database_query(call: Call, deps: Arc<Deps>) -> Reply {
    let query = call.params().text("query_type").ok().flatten();
    match query.as_deref().and_then(vocabulary::account_query) {
        Some(AccountQuery::Balance) => balance_now(&call, &deps),
        Some(AccountQuery::Transactions) => transactions_now(&call, &deps),
        None => Ok(WebhookResponse::new()
            .text(
                "I can look up your account balance or your recent transactions. Which would you \
                 like?",
            )
            .rich_content(chips(["Account balance", "Recent transactions"]))),
    }
}
