//! The user's wording: how what people type or say maps onto the business's terms.
//!
//! Every lookup by what a user typed goes through [`key`], the one normalisation shared with the
//! seed data's alias tables (`bombay` -> Mumbai, `general service` -> periodic service live in the
//! store; fixed vocabularies live here). Each `parse` accepts the synonyms a customer would use.

use super::{DealerKind, Fuel};

/// Normalises user text into a lookup key: lowercase letters and digits, single spaces.
pub fn key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// `sales`/`showroom`/`dealer`/`buy` or `service`/`service centre`/`workshop`/`repair`.
pub fn dealer_kind(text: &str) -> Option<DealerKind> {
    match key(text).as_str() {
        "sales" | "sale" | "showroom" | "dealer" | "dealership" | "buy" => Some(DealerKind::Sales),
        "service" | "service centre" | "service center" | "workshop" | "servicing" | "repair" => {
            Some(DealerKind::Service)
        }
        _ => None,
    }
}

/// `petrol`/`gasoline`/`gas`, `diesel`, `cng`, `electric`/`ev`/`battery`.
pub fn fuel(text: &str) -> Option<Fuel> {
    match key(text).as_str() {
        "petrol" | "gasoline" | "gas" => Some(Fuel::Petrol),
        "diesel" => Some(Fuel::Diesel),
        "cng" => Some(Fuel::Cng),
        "electric" | "ev" | "battery" => Some(Fuel::Electric),
        _ => None,
    }
}

/// What the seed guide's `database-query` tag asks for (`query_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountQuery {
    /// The current balance.
    Balance,
    /// The newest transactions.
    Transactions,
}

/// `account_balance`/`balance` or `recent_transactions`/`transactions`.
pub fn account_query(text: &str) -> Option<AccountQuery> {
    match key(text).as_str() {
        "account balance" | "balance" => Some(AccountQuery::Balance),
        "recent transactions" | "transactions" => Some(AccountQuery::Transactions),
        _ => None,
    }
}

/// "1 dealer", "2 dealers": a count with its noun in the right number.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// "petrol, diesel or electric".
pub fn or_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} or {}", init.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_punctuation_and_spaces() {
        assert_eq!(key("  Periodic   Service! "), "periodic service");
        assert_eq!(key("oil-change"), "oil change");
        assert_eq!(key("NEXON"), "nexon");
        assert_eq!(key("São Paulo"), "são paulo");
        assert_eq!(key("--"), "");
    }

    #[test]
    fn kinds_fuels_and_queries_parse_synonyms() {
        assert_eq!(dealer_kind("Service Center"), Some(DealerKind::Service));
        assert_eq!(dealer_kind("showroom"), Some(DealerKind::Sales));
        assert_eq!(dealer_kind("spaceship"), None);
        assert_eq!(fuel("Diesel"), Some(Fuel::Diesel));
        assert_eq!(fuel("EV"), Some(Fuel::Electric));
        assert_eq!(fuel("steam"), None);
        assert_eq!(
            account_query("account_balance"),
            Some(AccountQuery::Balance)
        );
        assert_eq!(
            account_query("Recent Transactions"),
            Some(AccountQuery::Transactions)
        );
        assert_eq!(account_query("loans"), None);
    }

    #[test]
    fn counts_and_lists_read_naturally() {
        assert_eq!(count(1, "dealer", "dealers"), "1 dealer");
        assert_eq!(count(3, "dealer", "dealers"), "3 dealers");
        assert_eq!(or_list(&["diesel"]), "diesel");
        assert_eq!(or_list(&["petrol", "diesel"]), "petrol or diesel");
        assert_eq!(
            or_list(&["petrol", "diesel", "electric"]),
            "petrol, diesel or electric"
        );
    }
}
