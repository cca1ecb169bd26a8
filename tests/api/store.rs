//! The SQLite store on real files: creation and demo data, reopening, refusal of foreign, corrupt and
//! newer files, idempotent seeding.

use cx_webhook::domain::{AccountId, DealerId, DealerKind, Fuel, ServiceKey, TransactionLimit};
use cx_webhook::store::catalog::DealerFilter;
use cx_webhook::store::{Create, Opened, Store, StoreError};

fn seeded(dir: &tempfile::TempDir) -> Store {
    let (store, opened) = Store::open(
        &dir.path().join("db/cx.db"),
        Create::IfMissing { seed: true },
    )
    .unwrap();
    assert_eq!(opened, Opened::Created);
    store
}

#[test]
fn a_missing_file_is_created_with_the_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(&dir);
    let a1001 = AccountId::parse("A1001").unwrap();
    let account = store.accounts().get(&a1001).unwrap().unwrap();
    assert_eq!(account.balance.to_string(), "₹1,25,430.50");
    let txns = store
        .accounts()
        .recent_transactions(&a1001, TransactionLimit::MAX)
        .unwrap();
    assert!(txns.len() >= 6, "{}", txns.len());
    assert!(txns.windows(2).all(|w| w[0].posted_at >= w[1].posted_at));

    let counts: std::collections::HashMap<_, _> = store.check().unwrap().into_iter().collect();
    assert!(counts["accounts"] >= 50);
    assert!(counts["dealers"] >= 30);
    assert!(counts["cities"] >= 6);
    assert!(counts["car_models"] >= 6);
    assert_eq!(counts["bookings"], 0);

    let catalog = store.catalog();
    let pune = catalog
        .dealer(&DealerId::parse("D-PUN-01").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (pune.kind, pune.city.as_str()),
        (DealerKind::Service, "Pune")
    );
    assert_eq!(pune.postal_code, "411001");

    let nexon = catalog.model("Nexon").unwrap().unwrap();
    let prices = catalog
        .prices(&nexon, &ServiceKey::new("periodic"))
        .unwrap();
    let fuels: Vec<Fuel> = prices.iter().map(|p| p.fuel).collect();
    assert!(fuels.contains(&Fuel::Petrol) && fuels.contains(&Fuel::Diesel));
}

#[test]
fn lookups_accept_aliases_and_postal_districts() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(&dir);
    let catalog = store.catalog();
    let city = catalog.city(" BOMBAY ").unwrap().unwrap();
    assert_eq!(
        (city.key.as_str(), city.name.as_str()),
        ("mumbai", "Mumbai")
    );
    let service = catalog.service("General Service").unwrap().unwrap();
    assert_eq!(service.key.as_str(), "periodic");
    // 411002 has no dealer of its own: the 411 district's dealers answer.
    let near = catalog
        .dealers_near_postal_code("411002", DealerFilter::default(), 5)
        .unwrap();
    assert!(!near.is_empty() && near.iter().all(|d| d.city == "Pune"));
    let nexon = catalog.model("nexon").unwrap().unwrap();
    let only_service = DealerFilter {
        kind: Some(DealerKind::Service),
        model: Some(&nexon),
    };
    let pune = catalog.city("Pune").unwrap().unwrap();
    let service_centres = catalog.dealers_in_city(&pune, only_service, 5).unwrap();
    assert!(!service_centres.is_empty());
    assert!(
        service_centres
            .iter()
            .all(|d| d.kind == DealerKind::Service)
    );
}

#[test]
fn reopening_and_reseeding_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/cx.db");
    let before = seeded(&dir).check().unwrap();
    let (store, opened) = Store::open(&path, Create::Never).unwrap();
    assert_eq!(opened, Opened::Existing);
    store.seed().unwrap();
    assert_eq!(store.check().unwrap(), before);
}

#[test]
fn foreign_corrupt_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();

    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    drop(conn);
    let err = Store::open(&foreign, Create::IfMissing { seed: true }).unwrap_err();
    assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");

    let text = dir.path().join("text.db");
    std::fs::write(
        &text,
        b"this is not a database, just some text long enough to matter",
    )
    .unwrap();
    let err = Store::open(&text, Create::IfMissing { seed: true }).unwrap_err();
    assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");

    let newer = dir.path().join("newer.db");
    let (store, _) = Store::open(&newer, Create::IfMissing { seed: false }).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&newer, Create::IfMissing { seed: true }).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");

    let corrupt = dir.path().join("corrupt.db");
    let (store, _) = Store::open(&corrupt, Create::IfMissing { seed: true }).unwrap();
    drop(store);
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len.min(4096 * 6)] {
        *b = 0xA5;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let _ = std::fs::remove_file(corrupt.with_extension("db-wal"));
    let err = Store::open(&corrupt, Create::IfMissing { seed: true }).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { .. } | StoreError::NotOurs { .. }),
        "{err}"
    );
}

#[test]
fn missing_file_without_create_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&dir.path().join("none.db"), Create::Never).unwrap_err();
    assert!(err.to_string().contains("none.db"), "{err}");
}
