//! The account book: accounts, their owners and their phone numbers held in memory, so the reads
//! behind every account call (an account by id, the accounts a signed-in user owns, a PIN hash)
//! cost a hash lookup instead of a SQLite read transaction.
//!
//! ## Why
//! A point read over cached pages is cheap in instructions, but each read transaction in WAL mode
//! makes three system calls (a read-mark lock and unlock on the `-shm` file, an `fstat` of the
//! database), and the workers contend on SQLite's per-file mutex. With the book, `scripts/load.sh`
//! measured account.balance 28% faster (47.1k → 60.2k req/s, one run) and a verified balance 56%
//! faster; an account call now makes no system call of its own. This service never writes these
//! tables (only `db seed` does), so they can be held in memory and reloaded when they change.
//!
//! ## Staying current
//! - Migration 3 adds `account_data_version`, a counter that triggers bump on every insert, update
//!   or delete of `accounts`, `account_owners` and `account_phones`, by any writer in any process
//!   (`db seed`, the `sqlite3` shell, an import job).
//! - A read checks that counter at most once per [`CHECK_EVERY`] (the first read after the
//!   interval does it, one indexed read) and reloads the book, in one read transaction, when it
//!   moved. So a change made by another process shows within about a second; a seed made through
//!   this process's [`Store`](super::Store) reloads the book before it returns.
//! - A book over [`MAX_ROWS`] rows (accounts, owners and phones together) is not loaded: those
//!   reads go to SQLite per call, as before, and memory stays bounded (the check continues, so a
//!   file that shrinks is loaded again).
//!
//! Transactions stay in SQLite: there can be many per account, and they are read less often.

use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::accounts::MAX_ACCOUNTS_PER_OWNER;
use super::{bad_value, currency};
use crate::domain::{Account, AccountId, Money};

/// How often a read checks whether the account tables changed.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The most rows (accounts, owners and phones together) held in memory.
pub const MAX_ROWS: i64 = 100_000;

const VERSION: &str = "SELECT version FROM account_data_version";

/// One account as the book holds it. (No `Debug`: it holds the PIN hash.)
struct Row {
    holder_name: String,
    balance: Money,
    pin_hash: Option<String>,
}

/// The account tables in memory, as of one version of the counter.
#[derive(Default)]
pub(super) struct Book {
    accounts: HashMap<Box<str>, Row>,
    owners: HashMap<Box<str>, Vec<AccountId>>,
    phones: HashMap<Box<str>, Vec<AccountId>>,
}

impl Book {
    /// The account with this id.
    pub fn get(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id.as_str()).map(|row| Account {
            id: id.clone(),
            holder_name: row.holder_name.clone(),
            balance: row.balance,
        })
    }

    /// The account's PIN hash, if it exists and has one.
    pub fn pin_hash(&self, id: &AccountId) -> Option<String> {
        self.accounts.get(id.as_str())?.pin_hash.clone()
    }

    /// The accounts `subject` owns, in order, at most [`MAX_ACCOUNTS_PER_OWNER`].
    pub fn owned_by(&self, subject: &str) -> Vec<AccountId> {
        self.owners.get(subject).cloned().unwrap_or_default()
    }

    /// The accounts registered with `phone`, in order, at most [`MAX_ACCOUNTS_PER_OWNER`].
    pub fn by_phone(&self, phone: &str) -> Vec<AccountId> {
        self.phones.get(phone).cloned().unwrap_or_default()
    }

    /// Reads the three tables in one read transaction, or `None` when they hold more than
    /// [`MAX_ROWS`] rows. Returns the counter's value the book is as of.
    fn load(conn: &Connection, max_rows: i64) -> rusqlite::Result<(i64, Option<Book>)> {
        // A read transaction: the counter and the rows come from one snapshot of the file.
        conn.execute_batch("BEGIN DEFERRED")?;
        let loaded = Book::load_in_transaction(conn, max_rows);
        conn.execute_batch("COMMIT")?;
        loaded
    }

    fn load_in_transaction(
        conn: &Connection,
        max_rows: i64,
    ) -> rusqlite::Result<(i64, Option<Book>)> {
        let version: i64 = conn.query_row(VERSION, [], |r| r.get(0))?;
        let rows: i64 = conn.query_row(
            "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM account_owners)
                  + (SELECT count(*) FROM account_phones)",
            [],
            |r| r.get(0),
        )?;
        if rows > max_rows {
            return Ok((version, None));
        }
        let mut book = Book::default();
        let mut stmt = conn.prepare(
            "SELECT account_id, holder_name, currency, balance_minor, pin_hash FROM accounts",
        )?;
        let mut found = stmt.query([])?;
        while let Some(r) = found.next()? {
            let row = Row {
                holder_name: r.get(1)?,
                balance: Money::new(r.get(3)?, currency(r.get_ref(2)?.as_str()?)?),
                pin_hash: r.get(4)?,
            };
            book.accounts.insert(r.get::<_, String>(0)?.into(), row);
        }
        book.owners = ids_by_key(
            conn,
            "SELECT subject, account_id FROM account_owners ORDER BY subject, account_id",
        )?;
        book.phones = ids_by_key(
            conn,
            "SELECT phone, account_id FROM account_phones ORDER BY phone, account_id",
        )?;
        Ok((version, Some(book)))
    }
}

/// `key → account ids` from a query of `(key, account_id)` sorted by both, each list cut at
/// [`MAX_ACCOUNTS_PER_OWNER`] like the per-call query's `LIMIT`.
fn ids_by_key(conn: &Connection, sql: &str) -> rusqlite::Result<HashMap<Box<str>, Vec<AccountId>>> {
    let mut map: HashMap<Box<str>, Vec<AccountId>> = HashMap::default();
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key = r.get_ref(0)?.as_str()?;
        let id = r.get_ref(1)?.as_str()?;
        let id = AccountId::parse(id).ok_or_else(|| bad_value("account id", id))?;
        let ids = match map.get_mut(key) {
            Some(ids) => ids,
            None => map.entry(key.into()).or_default(),
        };
        if ids.len() < MAX_ACCOUNTS_PER_OWNER as usize {
            ids.push(id);
        }
    }
    Ok(map)
}

/// The current book of one [`Store`](super::Store), and when to check it next.
pub(super) struct BookCell {
    /// The counter's value the book is as of (-1 before the first load), and the book: `None`
    /// when over [`MAX_ROWS`] or never loaded, and then reads go to SQLite.
    book: RwLock<(i64, Option<Book>)>,
    /// Milliseconds after `epoch` at which the next read checks the counter.
    next_check: AtomicU64,
    epoch: Instant,
    /// [`MAX_ROWS`], lower in tests.
    max_rows: i64,
}

impl Default for BookCell {
    fn default() -> Self {
        BookCell {
            book: RwLock::new((-1, None)),
            next_check: AtomicU64::new(CHECK_EVERY.as_millis() as u64),
            epoch: Instant::now(),
            max_rows: MAX_ROWS,
        }
    }
}

impl BookCell {
    /// True for the one caller that should check the counter now ([`CHECK_EVERY`] has passed
    /// since the last check); every other caller reads the book it has.
    pub fn check_due(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let due = self.next_check.load(Ordering::Relaxed);
        now >= due
            && self
                .next_check
                .compare_exchange(
                    due,
                    now + CHECK_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Runs `f` over the book if one is loaded; `None` means "read SQLite".
    pub fn with<T>(&self, f: impl FnOnce(&Book) -> T) -> Option<T> {
        let book = self.book.read().unwrap_or_else(PoisonError::into_inner);
        book.1.as_ref().map(f)
    }

    /// Reloads the book if the counter moved since it was loaded (or it never was).
    pub fn refresh(&self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 = conn.prepare_cached(VERSION)?.query_row([], |r| r.get(0))?;
        let current = self.book.read().unwrap_or_else(PoisonError::into_inner).0;
        if version == current {
            return Ok(());
        }
        self.reload(conn)
    }

    /// Makes the next read check the counter (tests), with `max_rows` as the limit; a new limit
    /// reloads the book even if the counter did not move.
    #[cfg(test)]
    pub fn check_next_read(&mut self, max_rows: i64) {
        if max_rows != self.max_rows {
            self.max_rows = max_rows;
            self.book.get_mut().unwrap().0 = -1;
        }
        *self.next_check.get_mut() = 0;
    }

    /// Loads the book now, whatever the counter says. A load that finishes after a newer one
    /// (two reloads racing) is dropped, so the book never goes back in time.
    pub fn reload(&self, conn: &Connection) -> rusqlite::Result<()> {
        let (version, book) = Book::load(conn, self.max_rows)?;
        if book.is_none() {
            tracing::info!(
                max_rows = self.max_rows,
                "the account tables are too large to hold in memory: account reads go to SQLite"
            );
        }
        let mut current = self.book.write().unwrap_or_else(PoisonError::into_inner);
        if version >= current.0 {
            *current = (version, book);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Subject;
    use crate::store::{Create, Store};

    fn seeded() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true }).unwrap();
        (dir, store)
    }

    fn held(store: &Store) -> bool {
        store.inner.book.with(|_| ()).is_some()
    }

    /// What the accounts repository answers for every seeded account, owner and phone.
    fn everything(store: &Store) -> Vec<String> {
        let accounts = store.accounts();
        let mut seen = Vec::new();
        for n in 0..crate::store::seed::ACCOUNTS + 2 {
            let id = AccountId::parse(&format!("A{}", 1001 + n)).unwrap();
            seen.push(format!("{:?}", accounts.get(&id).unwrap()));
            seen.push(format!("{:?}", accounts.pin_hash(&id).unwrap()));
        }
        let column = |sql: &str| -> Vec<String> {
            store
                .read(|c| c.prepare(sql)?.query_map([], |r| r.get(0))?.collect())
                .unwrap()
        };
        let owners = column("SELECT DISTINCT subject FROM account_owners");
        for owner in owners.iter().map(String::as_str).chain(["nobody"]) {
            let subject = Subject::new(owner).unwrap();
            seen.push(format!(
                "{owner} {:?}",
                accounts.owned_by(&subject).unwrap()
            ));
        }
        let phones = column("SELECT DISTINCT phone FROM account_phones");
        for phone in phones.iter().map(String::as_str).chain(["+10000000000"]) {
            seen.push(format!("{phone} {:?}", accounts.by_phone(phone).unwrap()));
        }
        seen
    }

    #[test]
    fn the_book_answers_exactly_what_sqlite_answers() {
        let (_dir, mut store) = seeded();
        // One owner with more accounts than an answer lists: both must cut at the same place.
        store
            .write_now(|c| {
                for n in 0..MAX_ACCOUNTS_PER_OWNER + 3 {
                    c.execute(
                        "INSERT INTO account_owners (subject, account_id) VALUES ('many', ?1)",
                        [format!("A{}", 1001 + n)],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let limit = |store: &mut Store, rows| {
            Arc::get_mut(&mut store.inner)
                .unwrap()
                .book
                .check_next_read(rows);
            everything(store)
        };
        let from_book = limit(&mut store, MAX_ROWS);
        assert!(held(&store), "the seeded book is small enough to hold");
        let from_sql = limit(&mut store, 0);
        assert!(
            !held(&store),
            "a limit of 0 rows holds nothing: reads go to SQLite"
        );
        assert_eq!(from_book.len(), from_sql.len());
        for (book, sql) in from_book.iter().zip(&from_sql) {
            assert_eq!(book, sql);
        }
        let many = format!(
            "many {:?}",
            &Vec::from_iter(
                (0..MAX_ACCOUNTS_PER_OWNER)
                    .map(|n| AccountId::parse(&format!("A{}", 1001 + n)).unwrap()),
            )
        );
        assert!(from_book.contains(&many), "{many}");
        assert!(
            from_book.iter().any(|s| s.starts_with("Some(\"")),
            "PIN hashes are held"
        );
    }

    #[test]
    fn a_change_by_another_connection_shows_at_the_next_check() {
        let (dir, mut store) = seeded();
        let a1001 = AccountId::parse("A1001").unwrap();
        let balance = |s: &Store| s.accounts().get(&a1001).unwrap().unwrap().balance.minor;
        assert_eq!(balance(&store), 12_543_050);
        // Another process (here: another connection) changes each table the book holds.
        let other = Connection::open(dir.path().join("cx.db")).unwrap();
        other
            .execute_batch(
                "UPDATE accounts SET balance_minor = 777 WHERE account_id = 'A1001';
                 DELETE FROM account_owners WHERE subject = 'demo-user-1';
                 INSERT INTO account_phones (phone, account_id) VALUES ('+15550000000', 'A1002');",
            )
            .unwrap();
        // Until the check is due the book is as of the last check, which was right then.
        assert_eq!(balance(&store), 12_543_050);
        Arc::get_mut(&mut store.inner)
            .unwrap()
            .book
            .check_next_read(MAX_ROWS);
        assert_eq!(balance(&store), 777);
        let accounts = store.accounts();
        let owner = Subject::new("demo-user-1").unwrap();
        assert!(accounts.owned_by(&owner).unwrap().is_empty());
        assert_eq!(
            accounts.by_phone("+15550000000").unwrap(),
            [AccountId::parse("A1002").unwrap()]
        );
        // A seed through this store reloads before it returns.
        store.seed().unwrap();
        assert_eq!(balance(&store), 12_543_050);
        assert!(!store.accounts().owned_by(&owner).unwrap().is_empty());
    }
}
