//! `account.balance`, `account.transactions`, and the seed guide's `database-query` alias that picks
//! one of them by `query_type`.
//!
//! Which account may be read is [`super::access`]'s decision (the end user's proven identity with
//! `ACCOUNT_ACCESS=verified`, the default); these handlers only read and phrase it. A missing,
//! malformed or unknown account number gets an answer that says what to give instead, and the
//! parameter is rejected so the agent asks again.

use std::sync::Arc;

use crate::cx::{RichContent, RichElement, WebhookResponse};
use crate::domain::vocabulary::{self, AccountQuery};
use crate::domain::{TransactionLimit, home_time_zone};

use super::access::account_for;
use super::{Call, Deps, Reply, chips};

/// `account.balance`: the account's current balance.
pub async fn balance(call: Call, deps: Arc<Deps>) -> Reply {
    balance_of(&call, &deps).await
}

async fn balance_of(call: &Call, deps: &Deps) -> Reply {
    let account = account_for(call, deps).await?;
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
    transactions_of(&call, &deps).await
}

async fn transactions_of(call: &Call, deps: &Deps) -> Reply {
    let account = account_for(call, deps).await?;
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
        Some(AccountQuery::Balance) => balance_of(&call, &deps).await,
        Some(AccountQuery::Transactions) => transactions_of(&call, &deps).await,
        None => Ok(WebhookResponse::new()
            .text(
                "I can look up your account balance or your recent transactions. Which would you \
                 like?",
            )
            .rich_content(chips(["Account balance", "Recent transactions"]))),
    }
}
