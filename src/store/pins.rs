//! PIN attempts: the lockout counter that stops guessing, kept in the writable store so it holds for
//! every instance sharing it.
//!
//! An attempt is *reserved* before the PIN is checked ([`PinAttempts::begin`] counts it as a
//! failure up front) and settled after ([`PinAttempts::finish`]): so twenty concurrent guesses,
//! from any number of instances, get at most [`MAX_PIN_FAILURES`] checks before the account locks
//! for [`LOCKOUT`]. A right PIN clears the counter. Each step is one atomic transaction.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::time::Instant;

use super::bookings::sqlite::classify;
use super::{RepoError, RepoFuture, Store, StoreError, bad_value};
use crate::domain::AccountId;

/// Wrong PINs in a row that lock an account.
pub const MAX_PIN_FAILURES: u32 = 5;

/// How long a locked account stays locked.
pub const LOCKOUT: SignedDuration = SignedDuration::from_mins(15);

/// May the caller try a PIN now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Yes: the attempt is counted; settle it with [`PinAttempts::finish`].
    Go,
    /// No: the account is locked until then.
    Locked {
        /// When it unlocks.
        until: Timestamp,
    },
}

/// Where PIN attempts are counted.
pub trait PinAttempts: Send + Sync + 'static {
    /// Reserves an attempt on `account`, or says it is locked.
    fn begin<'a>(
        &'a self,
        account: &'a AccountId,
        now: Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Attempt>;

    /// Settles a reserved attempt: a match clears the counter; a miss that reaches
    /// [`MAX_PIN_FAILURES`] locks the account and returns until when.
    fn finish<'a>(
        &'a self,
        account: &'a AccountId,
        matched: bool,
        now: Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Option<Timestamp>>;
}

/// The counter's state: wrong PINs in a row, and the end of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Attempts counted (reserved or missed) since the last match or lock.
    pub failures: u32,
    /// Locked until then, if locked (or a lock that has run out).
    pub locked_until: Option<Timestamp>,
}

/// [`PinAttempts::begin`]'s rule, the same for every backend: the answer and the state to store
/// (`None`: unchanged).
pub fn begin_step(c: Counter, now: Timestamp) -> (Attempt, Option<Counter>) {
    if let Some(until) = c.locked_until.filter(|u| *u > now) {
        return (Attempt::Locked { until }, None);
    }
    // An expired lock starts a fresh count.
    let failures = if c.locked_until.is_some() {
        0
    } else {
        c.failures
    };
    if failures >= MAX_PIN_FAILURES {
        let until = now + LOCKOUT;
        let locked = Counter {
            failures: 0,
            locked_until: Some(until),
        };
        return (Attempt::Locked { until }, Some(locked));
    }
    let reserved = Counter {
        failures: failures + 1,
        locked_until: None,
    };
    (Attempt::Go, Some(reserved))
}

/// [`PinAttempts::finish`]'s rule: the lock end to report and the state to store (`None`:
/// unchanged).
pub fn finish_step(
    c: Counter,
    matched: bool,
    now: Timestamp,
) -> (Option<Timestamp>, Option<Counter>) {
    if c.locked_until.is_some_and(|u| u > now) {
        return (c.locked_until, None);
    }
    if matched {
        return (None, Some(Counter::default()));
    }
    if c.failures >= MAX_PIN_FAILURES {
        let until = now + LOCKOUT;
        let locked = Counter {
            failures: 0,
            locked_until: Some(until),
        };
        return (Some(until), Some(locked));
    }
    (None, None)
}

/// PIN attempts in the SQLite file.
#[derive(Debug, Clone)]
pub struct SqlitePins {
    store: Store,
}

impl SqlitePins {
    /// Attempts counted in `store`'s file.
    pub fn new(store: Store) -> Self {
        SqlitePins { store }
    }

    async fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RepoError> {
        if self.store.is_read_only() {
            return Err(RepoError::Unavailable("the data file is read-only".into()));
        }
        let deadline = deadline.into_std();
        self.store
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            })
            .await
            .map_err(|e| classify(e, deadline))
    }
}

/// The counter of an account.
fn state(conn: &Connection, account: &str) -> Result<Counter, StoreError> {
    let row: Option<(u32, Option<String>)> = conn
        .prepare_cached("SELECT failures, locked_until FROM pin_attempts WHERE account_id = ?1")?
        .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (failures, until) = row.unwrap_or((0, None));
    let locked_until = match until {
        Some(t) => Some(t.parse().map_err(|_| bad_value("lock time", &t))?),
        None => None,
    };
    Ok(Counter {
        failures,
        locked_until,
    })
}

fn save(conn: &Connection, account: &str, c: Counter) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO pin_attempts (account_id, failures, locked_until) VALUES (?1, ?2, ?3)
         ON CONFLICT(account_id) DO UPDATE SET failures = excluded.failures,
             locked_until = excluded.locked_until",
    )?
    .execute(params![
        account,
        c.failures,
        c.locked_until.map(|t| t.to_string())
    ])?;
    Ok(())
}

impl PinAttempts for SqlitePins {
    fn begin<'a>(
        &'a self,
        account: &'a AccountId,
        now: Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Attempt> {
        let id = account.as_str().to_owned();
        Box::pin(self.run(deadline, move |conn| {
            let (attempt, next) = begin_step(state(conn, &id)?, now);
            if let Some(next) = next {
                save(conn, &id, next)?;
            }
            Ok(attempt)
        }))
    }

    fn finish<'a>(
        &'a self,
        account: &'a AccountId,
        matched: bool,
        now: Timestamp,
        deadline: Instant,
    ) -> RepoFuture<'a, Option<Timestamp>> {
        let id = account.as_str().to_owned();
        Box::pin(self.run(deadline, move |conn| {
            let (locked, next) = finish_step(state(conn, &id)?, matched, now);
            if let Some(next) = next {
                save(conn, &id, next)?;
            }
            Ok(locked)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Create;

    #[tokio::test]
    async fn five_misses_lock_and_a_match_clears() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true }).unwrap();
        let pins = SqlitePins::new(store);
        let a = AccountId::parse("A1001").unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let soon = Instant::now() + std::time::Duration::from_secs(10);
        // A match clears earlier misses.
        for _ in 0..3 {
            assert_eq!(pins.begin(&a, now, soon).await.unwrap(), Attempt::Go);
            assert_eq!(pins.finish(&a, false, now, soon).await.unwrap(), None);
        }
        assert_eq!(pins.begin(&a, now, soon).await.unwrap(), Attempt::Go);
        assert_eq!(pins.finish(&a, true, now, soon).await.unwrap(), None);
        for i in 1..=MAX_PIN_FAILURES {
            assert_eq!(pins.begin(&a, now, soon).await.unwrap(), Attempt::Go);
            let locked = pins.finish(&a, false, now, soon).await.unwrap();
            assert_eq!(locked.is_some(), i == MAX_PIN_FAILURES, "miss {i}");
        }
        let until = now + LOCKOUT;
        assert_eq!(
            pins.begin(&a, now, soon).await.unwrap(),
            Attempt::Locked { until }
        );
        // After the lockout, a fresh count.
        assert_eq!(pins.begin(&a, until, soon).await.unwrap(), Attempt::Go);
    }
}
