//! account.balance, account.transactions and the seed's database-query alias, against a freshly seeded
//! database over real HTTP.

use crate::common;

use common::{CxRequest, spawn_open_accounts};
use cx_webhook::domain::{AccountId, TransactionLimit};
use http::StatusCode;
use serde_json::{Value, json};

/// account.balance for `account`.
fn balance(account: &str) -> CxRequest {
    CxRequest::tag("account.balance").param("account_id", account)
}

#[tokio::test]
async fn balance_fixture_answers_with_text_and_session_params() {
    let app = spawn_open_accounts().await;
    let a = app.post_fixture("account-balance.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.texts(),
        vec!["The balance of account A1001 is ₹1,25,430.50."]
    );
    let params = &a.json()["sessionInfo"]["parameters"];
    assert_eq!(params["account_balance"], "125430.50");
    assert_eq!(params["currency"], "INR");
    assert_eq!(params["account_id"], "A1001");
}

/// Accounts are answered from memory (`store::book`); a change another process makes to the file
/// must still reach the answers, within about a second.
#[tokio::test]
async fn a_balance_changed_in_the_file_by_another_process_is_answered() {
    let app = spawn_open_accounts().await;
    let text = |a: common::Answer| a.texts().join(" ");
    assert!(text(app.post(balance("A1002")).await).contains("is ₹"));
    let other = rusqlite::Connection::open(app.store.path()).unwrap();
    other
        .execute(
            "UPDATE accounts SET balance_minor = 4200, currency = 'USD' WHERE account_id = 'A1002'",
            [],
        )
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let said = text(app.post(balance("A1002")).await);
        if said == "The balance of account A1002 is $42.00." {
            break;
        }
        assert!(std::time::Instant::now() < until, "still answers {said:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn seed_alias_and_event_triggered_requests_reach_the_balance() {
    let app = spawn_open_accounts().await;
    for name in ["seed-database-query.json", "event-triggered.json"] {
        let a = app.post_fixture(name).await;
        assert_eq!(
            a.texts(),
            vec!["The balance of account A1001 is ₹1,25,430.50."],
            "{name}"
        );
    }
    // database-query with query_type=recent_transactions, and an unknown query_type.
    let seed = CxRequest::fixture("seed-database-query.json");
    let body = seed
        .clone()
        .params(json!({"query_type": "recent_transactions", "user_id": "A1001", "limit": 2}));
    let a = app.post(body).await;
    assert!(a.texts()[0].starts_with("The last 2 transactions on account A1001:"));
    let a = app.post(seed.params(json!({"query_type": "loans"}))).await;
    assert!(a.texts()[0].contains("balance or your recent transactions"));
}

#[tokio::test]
async fn empty_tag_routes_by_intent_display_name() {
    let app = spawn_open_accounts().await;
    let a = app
        .post(CxRequest::fixture("account-balance.json").with_tag(""))
        .await;
    assert_eq!(
        a.texts(),
        vec!["The balance of account A1001 is ₹1,25,430.50."]
    );
}

#[tokio::test]
async fn transactions_fixture_lists_the_newest_five_newest_first() {
    let app = spawn_open_accounts().await;
    let a = app.post_fixture("account-transactions.json").await;
    let id = AccountId::parse("A1001").unwrap();
    let expected = app
        .store
        .accounts()
        .recent_transactions(&id, TransactionLimit::DEFAULT)
        .unwrap();
    let text = &a.texts()[0];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "The last 5 transactions on account A1001:");
    assert_eq!(lines.len(), 6);
    for (line, t) in lines[1..].iter().zip(&expected) {
        assert!(line.contains(&t.description), "{line}");
        assert!(line.ends_with(&t.amount.to_string()), "{line}");
    }
    let v = a.json();
    let card = &v["fulfillmentResponse"]["messages"][1]["payload"]["richContent"][0];
    let items: Vec<&Value> = card
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "list")
        .collect();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["title"], expected[0].description.as_str());
}

#[tokio::test]
async fn limit_is_bounded_to_one_through_ten() {
    let app = spawn_open_accounts().await;
    for (limit, shown, note) in [
        (json!(3), 3, false),
        (json!(50), 8, true),
        (json!("two"), 5, false),
    ] {
        let body = CxRequest::tag("account.transactions")
            .param("account_id", "A1001")
            .param("limit", limit.clone());
        let text = app.post(body).await.texts()[0].clone();
        // A1001 has 8 transactions: asking for 50 shows all 8 (at most 10) and says so.
        let items = text.lines().filter(|l| l.starts_with('•')).count();
        assert_eq!(items, shown, "{limit}: {text}");
        assert_eq!(text.contains("at most 10"), note, "{text}");
    }
}

#[tokio::test]
async fn each_account_sees_only_its_own_data() {
    let app = spawn_open_accounts().await;
    for n in [1002, 1030, 1060] {
        let id = AccountId::parse(&format!("A{n}")).unwrap();
        let account = app.store.accounts().get(&id).unwrap().unwrap();
        let a = app.post(balance(id.as_str())).await;
        assert_eq!(
            a.texts(),
            vec![format!(
                "The balance of account {id} is {}.",
                account.balance
            )]
        );
        assert!(!String::from_utf8_lossy(&a.body).contains("A1001"));
    }
}

#[tokio::test]
async fn unknown_malformed_and_missing_accounts_get_helpful_answers() {
    let app = spawn_open_accounts().await;

    let a = app.post(balance("A9999")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.texts()[0].contains("couldn't find account A9999"));
    assert_eq!(
        a.json()["sessionInfo"]["parameters"]["account_id"],
        Value::Null
    );
    assert!(
        a.json()["sessionInfo"]["parameters"]
            .get("account_balance")
            .is_none()
    );

    let a = app
        .post(CxRequest::tag("account.balance").param("user_id", "12; DROP TABLE accounts"))
        .await;
    assert!(a.texts()[0].contains("doesn't look like an account number"));
    assert!(
        a.json()["sessionInfo"]["parameters"]
            .get("user_id")
            .unwrap()
            .is_null()
    );

    let a = app.post(CxRequest::tag("account.balance")).await;
    assert!(a.texts()[0].starts_with("Which account"));

    // On a page whose form collects account_id, the bad value is invalidated so CX re-prompts.
    let a = app
        .post(CxRequest::tag("account.balance").filled_form(json!({"account_id": "X1"})))
        .await;
    assert_eq!(
        a.json()["pageInfo"]["formInfo"]["parameterInfo"],
        json!([{"displayName": "account_id", "state": "INVALID"}])
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_are_all_answered_correctly() {
    let app = std::sync::Arc::new(spawn_open_accounts().await);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let id = AccountId::parse(&format!("A{}", 1001 + i % 60)).unwrap();
            let a = app.post(balance(id.as_str())).await;
            (id, a)
        }));
    }
    for task in tasks {
        let (id, a) = task.await.unwrap();
        assert_eq!(a.status, StatusCode::OK);
        let account = app.store.accounts().get(&id).unwrap().unwrap();
        assert_eq!(
            a.texts(),
            vec![format!(
                "The balance of account {id} is {}.",
                account.balance
            )]
        );
    }
}
