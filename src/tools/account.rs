//! Account tools: `getAccountBalance` and `listRecentTransactions`. Account data reaches only the
//! end user who proved they own the account, so both need [`Input::end_user`]: the signed-in user's
//! ID token, verified by signature ([`super::verified_end_user`], the seam issue 12 fills). Without
//! one they answer 401; with one, an account the user may not read is 403 (whether or not it exists,
//! so account numbers cannot be probed), and an account of theirs the store lacks is 404.

use http::StatusCode;
use serde_json::{Value, json};

use super::{EndUser, Input, Problem, Tool, ToolResult, prop, store_down};
use crate::domain::{Account, AccountId, TransactionLimit, home_time_zone};

/// `POST /tools/account-balance`.
pub const BALANCE: Tool = Tool {
    name: "account-balance",
    operation_id: "getAccountBalance",
    summary: "The signed-in customer's account balance",
    description: "Returns the current balance of one of the signed-in customer's accounts. Needs \
        the customer's own ID token (not the agent's): without it the answer is 401, and an \
        account that is not theirs is 403. Use it when the customer asks how much is in or owed \
        on their account.",
    request: balance_request,
    response: balance_response,
    statuses: &[404],
    end_user: true,
    run: |input| Box::pin(balance(input)),
};

/// `POST /tools/recent-transactions`.
pub const TRANSACTIONS: Tool = Tool {
    name: "recent-transactions",
    operation_id: "listRecentTransactions",
    summary: "The signed-in customer's most recent account transactions",
    description: "Lists the newest transactions (1 to 10, default 5) on one of the signed-in \
        customer's accounts, newest first. Needs the customer's own ID token like \
        getAccountBalance. Use it when the customer asks what was charged or paid recently.",
    request: transactions_request,
    response: transactions_response,
    statuses: &[404],
    end_user: true,
    run: |input| Box::pin(transactions(input)),
};

fn account_id_prop() -> Value {
    json!({"type": "string", "pattern": "^[Aa]-?[0-9]{4,8}$",
           "description": "The account number: A followed by 4 to 8 digits.", "example": "A1001"})
}

fn balance_request() -> Value {
    json!({"type": "object", "required": ["account_id"], "properties": {"account_id": account_id_prop()}})
}

fn transactions_request() -> Value {
    json!({
        "type": "object",
        "required": ["account_id"],
        "properties": {
            "account_id": account_id_prop(),
            "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5,
                      "description": "How many transactions, newest first.", "example": 5}
        }
    })
}

fn amount(description: &str) -> Value {
    json!({"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$", "description": description, "example": "12500.00"})
}

fn balance_response() -> Value {
    json!({
        "type": "object",
        "required": ["account_id", "balance", "currency", "balance_text"],
        "properties": {
            "account_id": prop("string", "The account number.", json!("A1001")),
            "balance": amount("The balance in major units; negative when owed."),
            "currency": prop("string", "ISO 4217 code.", json!("INR")),
            "balance_text": prop("string", "The balance formatted for the customer.", json!("₹12,500.00"))
        }
    })
}

fn transactions_response() -> Value {
    json!({
        "type": "object",
        "required": ["account_id", "transactions"],
        "properties": {
            "account_id": prop("string", "The account number.", json!("A1001")),
            "transactions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["posted_on", "description", "amount", "currency", "amount_text"],
                    "properties": {
                        "posted_on": {"type": "string", "format": "date", "description": "Posting day (India time)."},
                        "description": {"type": "string"},
                        "amount": amount("Signed amount in major units; negative for debits."),
                        "currency": {"type": "string"},
                        "amount_text": {"type": "string"}
                    }
                }
            }
        }
    })
}

/// The account the body names, if `user` may read it (see the module docs for the statuses).
fn readable_account(input: &Input, user: Option<&EndUser>, tool: &str) -> Result<Account, Problem> {
    let user = user.ok_or_else(Problem::end_user_required)?;
    let text = input.required_text("account_id", "an account number like A1001")?;
    let id = AccountId::parse(&text).ok_or_else(|| {
        Problem::invalid(
            "account_id",
            "`account_id` is an A followed by 4 to 8 digits, like A1001.",
        )
    })?;
    if !user.accounts.contains(&id) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "account_not_yours",
            "Forbidden",
            "The signed-in customer cannot read this account.",
        ));
    }
    input
        .deps
        .store
        .accounts()
        .get(&id)
        .map_err(|e| store_down(tool, e))?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown_account",
                "Unknown account",
                format!("There is no account {id}."),
            )
        })
}

/// `getAccountBalance` for `user` (the seam: `None` is 401).
pub fn balance_for(input: &Input, user: Option<&EndUser>) -> ToolResult {
    let account = readable_account(input, user, "account-balance")?;
    Ok(json!({
        "account_id": account.id.as_str(),
        "balance": account.balance.decimal(),
        "currency": account.balance.currency.code(),
        "balance_text": account.balance.to_string(),
    }))
}

/// `listRecentTransactions` for `user` (the seam: `None` is 401).
pub fn transactions_for(input: &Input, user: Option<&EndUser>) -> ToolResult {
    let account = readable_account(input, user, "recent-transactions")?;
    let asked = input
        .params()
        .int("limit")
        .map_err(|_| Problem::invalid("limit", "`limit` is a whole number from 1 to 10."))?;
    if asked.is_some_and(|n| !(1..=i64::from(TransactionLimit::MAX.get())).contains(&n)) {
        return Err(Problem::invalid("limit", "`limit` is from 1 to 10."));
    }
    let (limit, _) = TransactionLimit::clamp(asked);
    let txns = input
        .deps
        .store
        .accounts()
        .recent_transactions(&account.id, limit)
        .map_err(|e| store_down("recent-transactions", e))?;
    let tz = home_time_zone();
    let list: Vec<Value> = txns
        .iter()
        .map(|t| {
            json!({
                "posted_on": t.posted_at.to_zoned_datetime(tz.clone()).date().to_string(),
                "description": t.description,
                "amount": t.amount.decimal(),
                "currency": t.amount.currency.code(),
                "amount_text": t.amount.to_string(),
            })
        })
        .collect();
    Ok(json!({"account_id": account.id.as_str(), "transactions": list}))
}

async fn balance(input: Input) -> ToolResult {
    balance_for(&input, input.end_user.as_ref())
}

async fn transactions(input: Input) -> ToolResult {
    transactions_for(&input, input.end_user.as_ref())
}
