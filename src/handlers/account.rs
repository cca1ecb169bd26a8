//! `account.balance`, `account.transactions`, and the seed guide's `database-query` alias that picks
//! one of them by `query_type`.
//!
//! The account comes from `account_id` (alias `user_id`) and nothing else: a handler reads only the
//! account its parameters name, so one customer's data can never reach another's conversation. A
//! missing, malformed or unknown account number gets an answer that says what to give instead, and the
//! parameter is rejected so the agent asks again.

use crate::cx::{RichContent, RichElement, WebhookResponse};
use crate::domain::AccountId;
use crate::store::Store;
use crate::store::queries::{self, Account};

use super::{Call, Handler, HandlerError, HandlerFuture, chips, reject};

/// Parameter names that may carry the account number, in order of preference.
const ACCOUNT_PARAMS: &[&str] = &["account_id", "user_id"];
/// Transactions shown when `limit` is not given.
const DEFAULT_LIMIT: i64 = 5;
/// Most transactions shown at once.
const MAX_LIMIT: i64 = 10;
/// Time zone used to show transaction dates (the demo bank is Indian).
const DISPLAY_TZ: &str = "Asia/Kolkata";

/// Finds the account the call names, or the answer to give when it names none.
fn find_account(
    call: &Call,
    store: &Store,
) -> Result<Result<Account, WebhookResponse>, HandlerError> {
    let params = call.params();
    let Some(name) = params.first_present(ACCOUNT_PARAMS) else {
        return Ok(Err(WebhookResponse::new().text(
            "Which account would you like me to look at? Account numbers look like A1001.",
        )));
    };
    let text = params.text(name).ok().flatten().unwrap_or_default();
    let Some(id) = AccountId::parse(&text) else {
        let answer = WebhookResponse::new().text(
            "That doesn't look like an account number. Account numbers are an A followed by \
             digits, like A1001. Which account is yours?",
        );
        return Ok(Err(reject(call, answer, name)));
    };
    match store.read(|c| queries::account(c, &id))? {
        Some(account) => Ok(Ok(account)),
        None => {
            let answer = WebhookResponse::new().text(format!(
                "I couldn't find account {id}. Could you check the number and tell me again?"
            ));
            Ok(Err(reject(call, answer, name)))
        }
    }
}

/// `account.balance`: the account's current balance.
pub struct Balance {
    store: Store,
}

impl Balance {
    /// The handler over `store`.
    pub fn new(store: Store) -> Self {
        Balance { store }
    }

    fn answer(&self, call: &Call) -> Result<WebhookResponse, HandlerError> {
        let account = match find_account(call, &self.store)? {
            Ok(account) => account,
            Err(answer) => return Ok(answer),
        };
        Ok(WebhookResponse::new()
            .text(format!(
                "The balance of account {} is {}.",
                account.id, account.balance
            ))
            .set_param("account_id", account.id.as_str())
            .set_param("account_balance", account.balance.decimal())
            .set_param("currency", account.balance.currency.code()))
    }
}

impl Handler for Balance {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move { self.answer(call) })
    }
}

/// `account.transactions`: the newest transactions, as text lines and a Messenger list.
pub struct Transactions {
    store: Store,
}

impl Transactions {
    /// The handler over `store`.
    pub fn new(store: Store) -> Self {
        Transactions { store }
    }

    fn answer(&self, call: &Call) -> Result<WebhookResponse, HandlerError> {
        let account = match find_account(call, &self.store)? {
            Ok(account) => account,
            Err(answer) => return Ok(answer),
        };
        let asked = call.params().int("limit").ok().flatten();
        let limit = asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let txns = self.store.read(|c| {
            queries::recent_transactions(c, &account.id, u32::try_from(limit).unwrap_or(5))
        })?;
        let response = WebhookResponse::new().set_param("account_id", account.id.as_str());
        if txns.is_empty() {
            return Ok(response.text(format!(
                "There are no transactions on account {} yet.",
                account.id
            )));
        }
        let tz = jiff::tz::TimeZone::get(DISPLAY_TZ).unwrap_or(jiff::tz::TimeZone::UTC);
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
        if asked.is_some_and(|n| n > MAX_LIMIT) {
            lines.push(format!("(I can show at most {MAX_LIMIT} at a time.)"));
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
}

impl Handler for Transactions {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move { self.answer(call) })
    }
}

/// The seed guide's `database-query` tag: `query_type` = `account_balance` | `recent_transactions`.
pub struct DatabaseQuery {
    balance: Balance,
    transactions: Transactions,
}

impl DatabaseQuery {
    /// The alias handler over `store`.
    pub fn new(store: Store) -> Self {
        DatabaseQuery {
            balance: Balance::new(store.clone()),
            transactions: Transactions::new(store),
        }
    }
}

impl Handler for DatabaseQuery {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move {
            let query = call
                .params()
                .text("query_type")
                .ok()
                .flatten()
                .unwrap_or_default();
            match queries::key(&query).as_str() {
                "account balance" | "balance" => self.balance.answer(call),
                "recent transactions" | "transactions" => self.transactions.answer(call),
                _ => Ok(WebhookResponse::new()
                    .text(
                        "I can look up your account balance or your recent transactions. \
                         Which would you like?",
                    )
                    .rich_content(chips(["Account balance", "Recent transactions"]))),
            }
        })
    }
}
