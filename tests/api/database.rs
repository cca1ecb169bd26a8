//! The database file as the binary meets it at start: missing (created and seeded), corrupt or foreign
//! (refused, exit code 2, a clear message), read-only (served read-only with a warning), and the `db`
//! subcommands.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::process::{Binary, post, terminate};

fn post_fixture(address: &str, name: &str) -> String {
    post(address, &common::fixture(name))
}

fn db(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .env_clear()
        .arg("db")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_missing_database_is_created_and_seeded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address, log) = Binary::new(&dir)
        .env("DATABASE_PATH", dir.path().join("nested/dir/cx.db"))
        .env("ACCOUNT_ACCESS", "open")
        .start_with_log();
    assert!(dir.path().join("nested/dir/cx.db").exists());
    let answer = post_fixture(&address, "account-balance.json");
    assert!(answer.contains("₹1,25,430.50"), "{answer}");
    terminate(&mut child);
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("created it with the demo data"), "{log}");
}

#[test]
fn corrupt_and_foreign_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cx.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let out = Binary::new(&dir).env("DATABASE_PATH", &path).run();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a cx-webhook database"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");

    let seeded = dir.path().join("seeded.db");
    let init = db(&[
        "init",
        "--seed",
        "--database-path",
        seeded.to_str().unwrap(),
    ]);
    assert!(init.status.success());
    let mut bytes = std::fs::read(&seeded).unwrap();
    for b in &mut bytes[4096 * 2..4096 * 8] {
        *b = 0x5A;
    }
    std::fs::write(&seeded, bytes).unwrap();
    let out = Binary::new(&dir).env("DATABASE_PATH", &seeded).run();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") || err.contains("not a cx-webhook database"),
        "{err}"
    );
}

/// The uid that cannot write root's files (tests run as root in CI, where chmod alone binds nobody).
fn unprivileged(binary: Binary, dir: &tempfile::TempDir) -> Binary {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        binary.run_as(65534, dir)
    } else {
        binary
    }
}

/// A seeded database file made read-only (0444) in `dir`, whose mode becomes `dir_mode`.
fn read_only_database(dir: &tempfile::TempDir, dir_mode: u32) -> std::path::PathBuf {
    let path = dir.path().join("cx.db");
    let init = db(&["init", "--seed", "--database-path", path.to_str().unwrap()]);
    assert!(init.status.success());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(dir_mode)).unwrap();
    path
}

#[test]
fn a_read_only_file_is_served_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = read_only_database(&dir, 0o777);
    let (mut child, address, log) = unprivileged(
        Binary::new(&dir)
            .env("DATABASE_PATH", &path)
            .env("ACCOUNT_ACCESS", "open"),
        &dir,
    )
    .start_with_log();
    let answer = post_fixture(&address, "account-balance.json");
    assert!(answer.contains("₹1,25,430.50"), "{answer}");
    terminate(&mut child);
    assert!(log.lock().unwrap().iter().any(|l| l.contains("read-only")));
}

#[test]
fn a_read_only_file_in_a_read_only_directory_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = read_only_database(&dir, 0o555);
    let out = unprivileged(Binary::new(&dir).env("DATABASE_PATH", &path), &dir).run();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("make the directory writable"), "{err}");
}

#[test]
fn db_subcommands_init_seed_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cx.db");
    let p = path.to_str().unwrap();

    let out = db(&["check", "--database-path", p]);
    assert!(!out.status.success(), "check needs an existing file");

    let out = db(&["init", "--database-path", p]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("created") && text.contains("accounts: 0"),
        "{text}"
    );

    let out = db(&["seed", "--database-path", p]);
    assert!(out.status.success());
    let out = db(&["check", "--database-path", p]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("integrity: ok"), "{text}");
    assert!(
        text.contains("accounts: 60") && text.contains("dealers: 32"),
        "{text}"
    );

    // Seeding again changes nothing.
    assert!(
        db(&["init", "--seed", "--database-path", p])
            .status
            .success()
    );
    let again = String::from_utf8_lossy(&db(&["check", "--database-path", p]).stdout).into_owned();
    assert_eq!(again, text);
}
