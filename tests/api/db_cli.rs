//! `cx-webhook db ...` says what it did, and what to do next when it cannot.

use std::process::{Command, Output};

fn db(args: &[&str], path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cx-webhook"))
        .env_clear()
        .arg("db")
        .args(args)
        .arg("--database-path")
        .arg(path)
        .output()
        .unwrap()
}

fn first_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn init_seed_says_whether_it_created_or_rewrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cx.db");
    let created = db(&["init", "--seed"], &path);
    assert!(created.status.success());
    assert!(
        first_line(&created).ends_with(": created, with the demo data"),
        "{}",
        first_line(&created)
    );
    let again = db(&["init", "--seed"], &path);
    assert!(again.status.success());
    let line = first_line(&again);
    assert!(
        line.ends_with(": schema already up to date; demo data rewritten (bookings kept)"),
        "{line}"
    );
    let plain = db(&["init"], &path);
    assert!(first_line(&plain).ends_with("; data unchanged"));
}

#[test]
fn check_and_seed_on_a_missing_file_suggest_init_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    for action in ["check", "seed"] {
        let out = db(&[action], &path);
        assert_eq!(out.status.code(), Some(1), "{action}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("`cx-webhook db init --seed`"), "{err}");
        assert!(!path.exists(), "{action} created the file");
    }
}
