//! Where should an indexed point read run? Three ways to read one account from async code, same
//! query, same seeded file:
//! - `inline`: on the calling (tokio worker) thread with a pooled read-only connection — what
//!   `Store::accounts().get` does;
//! - `spawn_blocking`: hop to tokio's blocking pool and back, the textbook answer for blocking work;
//! - `reader_thread`: a dedicated reader thread with its own connection, fed over a channel.
//!
//! Each iteration runs [`BATCH`] reads as concurrent tasks on a 2-worker runtime (as 64 connections
//! would) and waits for all of them; divan reports reads per second. Run: `cargo bench --bench store`.
//! The choice and the figures are recorded in `src/store/mod.rs`'s module docs.

use std::sync::mpsc;

use cx_webhook::domain::{Account, AccountId};
use cx_webhook::store::{Create, Store};
use divan::Bencher;
use divan::counter::ItemsCount;

/// Concurrent reads per iteration.
const BATCH: usize = 256;

fn main() {
    divan::main();
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    runtime: tokio::runtime::Runtime,
    id: AccountId,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        Store::open(&dir.path().join("cx.db"), Create::IfMissing { seed: true }).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        store,
        runtime,
        id: AccountId::parse("A1001").unwrap(),
    }
}

/// Runs [`BATCH`] copies of `read` as tasks on the runtime's workers and waits for all of them.
fn batch<F, Fut>(rt: &tokio::runtime::Runtime, read: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<i64>> + Send + 'static,
{
    rt.block_on(async {
        let tasks: Vec<_> = (0..BATCH).map(|_| tokio::spawn(read())).collect();
        for task in tasks {
            assert!(task.await.unwrap().is_some());
        }
    });
}

#[divan::bench(sample_count = 200)]
fn inline(bencher: Bencher) {
    let s = setup();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        batch(&s.runtime, || {
            let (store, id) = (s.store.clone(), s.id.clone());
            async move { store.accounts().get(&id).unwrap().map(|a| a.balance.minor) }
        })
    });
}

#[divan::bench(sample_count = 200)]
fn spawn_blocking(bencher: Bencher) {
    let s = setup();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        batch(&s.runtime, || {
            let (store, id) = (s.store.clone(), s.id.clone());
            async move {
                tokio::task::spawn_blocking(move || store.accounts().get(&id))
                    .await
                    .unwrap()
                    .unwrap()
                    .map(|a| a.balance.minor)
            }
        })
    });
}

type Job = (AccountId, tokio::sync::oneshot::Sender<Option<Account>>);

#[divan::bench(sample_count = 200)]
fn reader_thread(bencher: Bencher) {
    let s = setup();
    let (tx, rx) = mpsc::channel::<Job>();
    let store = s.store.clone();
    let reader = std::thread::spawn(move || {
        for (id, reply) in rx {
            let _ = reply.send(store.accounts().get(&id).unwrap());
        }
    });
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        batch(&s.runtime, || {
            let (tx, id) = (tx.clone(), s.id.clone());
            async move {
                let (reply, answer) = tokio::sync::oneshot::channel();
                tx.send((id, reply)).unwrap();
                answer.await.unwrap().map(|a| a.balance.minor)
            }
        })
    });
    drop(tx);
    reader.join().unwrap();
}
