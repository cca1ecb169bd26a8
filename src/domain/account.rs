//! Accounts: the customer account number and what the store holds about an account.

use std::fmt;

use jiff::Timestamp;

use super::Money;

/// A customer account number: `A` followed by 4 to 8 digits, e.g. `A1001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Parses user input: trims, ignores case and inner spaces/hyphens (`a-1001` -> `A1001`).
    pub fn parse(input: &str) -> Option<AccountId> {
        let mut compact = String::with_capacity(input.len());
        for c in input.trim().chars().filter(|c| !matches!(c, ' ' | '-')) {
            compact.push(c.to_ascii_uppercase());
        }
        let digits = compact.strip_prefix('A')?;
        ((4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(AccountId(compact))
    }

    /// The canonical form, e.g. `A1001`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its number.
    pub id: AccountId,
    /// The holder's name.
    pub holder_name: String,
    /// Current balance.
    pub balance: Money,
}

/// One posted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// When it was posted.
    pub posted_at: Timestamp,
    /// What it was.
    pub description: String,
    /// Signed amount: negative for debits.
    pub amount: Money,
}

/// How many transactions to list: 1 to [`TransactionLimit::MAX`], [`TransactionLimit::DEFAULT`]
/// when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimit(u32);

impl TransactionLimit {
    /// Listed when the user names no number.
    pub const DEFAULT: TransactionLimit = TransactionLimit(5);
    /// The most listed at once.
    pub const MAX: TransactionLimit = TransactionLimit(10);

    /// The limit for what the user asked (clamped into range), and whether it had to be lowered.
    pub fn clamp(asked: Option<i64>) -> (TransactionLimit, bool) {
        match asked {
            None => (Self::DEFAULT, false),
            Some(n) if n > i64::from(Self::MAX.0) => (Self::MAX, true),
            Some(n) => (
                TransactionLimit(u32::try_from(n.max(1)).unwrap_or(1)),
                false,
            ),
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_normalised_or_refused() {
        assert_eq!(AccountId::parse(" a1001 ").unwrap().as_str(), "A1001");
        assert_eq!(AccountId::parse("A-1001").unwrap().as_str(), "A1001");
        assert_eq!(
            AccountId::parse("A 10012345").unwrap().as_str(),
            "A10012345"
        );
        for bad in [
            "",
            "1001",
            "A10",
            "A123456789",
            "B1001",
            "A10O1",
            "A1001; drop",
        ] {
            assert!(AccountId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn transaction_limits_are_clamped() {
        assert_eq!(
            TransactionLimit::clamp(None),
            (TransactionLimit::DEFAULT, false)
        );
        assert_eq!(TransactionLimit::clamp(Some(3)).0.get(), 3);
        assert_eq!(TransactionLimit::clamp(Some(0)).0.get(), 1);
        assert_eq!(TransactionLimit::clamp(Some(-4)).0.get(), 1);
        assert_eq!(
            TransactionLimit::clamp(Some(11)),
            (TransactionLimit::MAX, true)
        );
    }
}
