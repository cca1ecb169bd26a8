//! Accounts and their transactions: indexed point reads, safe inline (see [`crate::store`]).
//! Accounts, owners and phones are answered from the in-memory account book when it is held
//! ([`super::book`]), from SQLite otherwise; transactions always come from SQLite.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, bad_value, currency};
use crate::domain::{Account, AccountId, Money, Subject, Transaction, TransactionLimit};

/// Most accounts one owner or one phone number is listed with.
pub const MAX_ACCOUNTS_PER_OWNER: u32 = 20;

const RECENT_TRANSACTIONS: &str = "SELECT t.posted_at, t.description, t.amount_minor, a.currency
     FROM transactions t JOIN accounts a ON a.account_id = t.account_id
     WHERE t.account_id = ?1
     ORDER BY t.posted_at DESC, t.id DESC
     LIMIT ?2";
const OWNED_BY: &str =
    "SELECT account_id FROM account_owners WHERE subject = ?1 ORDER BY account_id LIMIT ?2";
const BY_PHONE: &str =
    "SELECT account_id FROM account_phones WHERE phone = ?1 ORDER BY account_id LIMIT ?2";

/// The accounts repository (borrowed from a [`Store`]).
#[derive(Debug, Clone, Copy)]
pub struct Accounts<'s> {
    pub(super) store: &'s Store,
}

impl Accounts<'_> {
    /// The account with this id, if it exists (from the account book, or a primary-key read).
    pub fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        if let Some(found) = self.store.book(|book| book.get(id)) {
            return Ok(found);
        }
        self.store.read(|conn| {
            conn.prepare_cached(
                "SELECT holder_name, currency, balance_minor FROM accounts WHERE account_id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                Ok(Account {
                    id: id.clone(),
                    holder_name: r.get(0)?,
                    // The code is read in place (no String per call).
                    balance: Money::new(r.get(2)?, currency(r.get_ref(1)?.as_str()?)?),
                })
            })
            .optional()
        })
    }

    /// The newest `limit` transactions of one account, newest first (an index range).
    pub fn recent_transactions(
        &self,
        id: &AccountId,
        limit: TransactionLimit,
    ) -> Result<Vec<Transaction>, StoreError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(RECENT_TRANSACTIONS)?;
            let rows = stmt.query_map(params![id.as_str(), limit.get()], |r| {
                let posted: String = r.get(0)?;
                Ok(Transaction {
                    posted_at: posted
                        .parse()
                        .map_err(|_| bad_value("timestamp", &posted))?,
                    description: r.get(1)?,
                    amount: Money::new(r.get(2)?, currency(&r.get::<_, String>(3)?)?),
                })
            })?;
            rows.collect()
        })
    }

    /// The accounts `subject` owns, in order (from the account book, or a primary-key range), at
    /// most [`MAX_ACCOUNTS_PER_OWNER`].
    pub fn owned_by(&self, subject: &Subject) -> Result<Vec<AccountId>, StoreError> {
        if let Some(found) = self.store.book(|book| book.owned_by(subject.as_str())) {
            return Ok(found);
        }
        self.ids(OWNED_BY, subject.as_str())
    }

    /// The accounts registered with this phone number (E.164), in order (from the account book,
    /// or a primary-key range).
    pub fn by_phone(&self, phone: &str) -> Result<Vec<AccountId>, StoreError> {
        if let Some(found) = self.store.book(|book| book.by_phone(phone)) {
            return Ok(found);
        }
        self.ids(BY_PHONE, phone)
    }

    fn ids(&self, sql: &str, key: &str) -> Result<Vec<AccountId>, StoreError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params![key, MAX_ACCOUNTS_PER_OWNER], |r| {
                let id: String = r.get(0)?;
                AccountId::parse(&id).ok_or_else(|| bad_value("account id", &id))
            })?;
            rows.collect()
        })
    }

    /// The account's PIN hash (a PHC string), if it has one (from the account book, or a
    /// primary-key read).
    pub fn pin_hash(&self, id: &AccountId) -> Result<Option<String>, StoreError> {
        if let Some(found) = self.store.book(|book| book.pin_hash(id)) {
            return Ok(found);
        }
        self.store.read(|conn| {
            conn.prepare_cached("SELECT pin_hash FROM accounts WHERE account_id = ?1")?
                .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
                .optional()
                .map(Option::flatten)
        })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::store::Create;

    /// Without the query planner stability guarantee (see `configure` in [`crate::store`]) SQLite
    /// re-prepares these on every new binding; each must be prepared once and then reused.
    #[test]
    fn the_per_call_reads_are_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true }).unwrap();
        let accounts = store.accounts();
        let a1001 = AccountId::parse("A1001").unwrap();
        for (subject, limit) in [("demo-user-1", 3), ("demo-user-2", 5), ("demo-user-1", 3)] {
            let owned = accounts.owned_by(&Subject::new(subject).unwrap()).unwrap();
            assert!(!owned.is_empty(), "{subject}");
            accounts.by_phone("+919876501001").unwrap();
            let limit = TransactionLimit::clamp(Some(limit)).0;
            assert!(
                !accounts
                    .recent_transactions(&a1001, limit)
                    .unwrap()
                    .is_empty()
            );
        }
        for sql in [OWNED_BY, BY_PHONE, RECENT_TRANSACTIONS] {
            let reprepared = store
                .read(|conn| {
                    Ok(conn
                        .prepare_cached(sql)?
                        .get_status(StatementStatus::RePrepare))
                })
                .unwrap();
            assert_eq!(reprepared, 0, "re-prepared on rebinding: {sql}");
        }
    }
}
