//! The documentation cannot drift from the code:
//! - `docs/configuration.md`'s table lists exactly the flags of `cx-webhook --help-all`, each with its
//!   variable and default;
//! - every command in the README's `bash` blocks is run here against the README's own `serve`
//!   command (the booking must succeed), or is one of the checks `.ci/run` runs itself;
//! - the dev identity-provider recipe, in `docs/authentication.md` and the README's tour, runs as
//!   written: a signed-in end user sees their balance, another user and nobody do not.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cx-webhook");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One setting as `--help-all` shows it.
#[derive(Debug, Default, PartialEq)]
struct Setting {
    env: Option<String>,
    default: Option<String>,
}

/// The flags of `cx-webhook --help-all` (help and version excluded), with variable and default.
fn help_all_settings() -> BTreeMap<String, Setting> {
    let out = Command::new(BIN).arg("--help-all").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut settings = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if (2..=6).contains(&indent) && trimmed.starts_with('-') {
            let flag = trimmed
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(str::to_owned);
            current = flag.filter(|f| !["--help", "--help-all", "--version"].contains(&f.as_str()));
            if let Some(flag) = &current {
                settings.insert(flag.clone(), Setting::default());
            }
        } else if let Some(flag) = &current {
            let setting = settings.get_mut(flag).unwrap();
            if let Some(env) = trimmed.strip_prefix("[env: ") {
                let name = env.trim_end_matches(']').split('=').next().unwrap();
                setting.env = Some(name.to_owned());
            } else if let Some(default) = trimmed.strip_prefix("[default: ") {
                setting.default = Some(default.trim_end_matches(']').to_owned());
            }
        }
    }
    settings
}

/// The first table of docs/configuration.md: flag -> (variable, default cell).
fn documented_settings() -> BTreeMap<String, (String, String)> {
    let doc = read("docs/configuration.md");
    let mut rows = BTreeMap::new();
    let table = doc
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `--"));
    for row in table {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let flag = cells[0].trim_matches('`').to_owned();
        let env = cells[1].trim_matches('`').to_owned();
        assert!(
            rows.insert(flag.clone(), (env, cells[2].to_owned()))
                .is_none(),
            "{flag} twice in docs/configuration.md"
        );
    }
    rows
}

#[test]
fn the_configuration_table_is_the_help() {
    let help = help_all_settings();
    let docs = documented_settings();
    assert!(help.len() > 20, "{help:?}");
    let missing: Vec<_> = help.keys().filter(|f| !docs.contains_key(*f)).collect();
    let extra: Vec<_> = docs.keys().filter(|f| !help.contains_key(*f)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md is out of date: add rows for {missing:?}, remove {extra:?}"
    );
    for (flag, setting) in &help {
        let (env, default) = &docs[flag];
        assert_eq!(
            Some(env),
            setting.env.as_ref(),
            "{flag}: docs/configuration.md names {env}"
        );
        if let Some(value) = &setting.default {
            assert!(
                default.contains(&format!("`{value}`")),
                "{flag}: the default is `{value}`, docs/configuration.md says {default}"
            );
        }
    }
}

/// The command lines of the `bash` blocks of a Markdown file: continuation lines joined, comment
/// lines dropped, trailing comments (after two spaces) cut.
fn bash_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_bash = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_bash = !in_bash && line == "```bash";
            continue;
        }
        if !in_bash || line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let line = match line.find("  #") {
            Some(i) => &line[..i],
            None => line,
        };
        let line = line.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        commands.push(std::mem::take(&mut pending).trim().to_owned());
    }
    commands
}

/// A `serve` started from a command line, on an ephemeral port.
struct Served {
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` (a `serve` command) with `envs` in bash, and waits for its "listening" log line.
fn serve(script: &str, envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec {script}"))
        .current_dir(repo(""))
        .env("LOG_FORMAT", "json")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("`{script}` exited before listening"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Served { child, address }
}

/// Runs `script` in bash in the checkout; returns stdout, failing with both streams on a non-zero exit.
fn run(script: &str, envs: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(repo(""))
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{script}` failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The README's commands that `.ci/run` runs itself (and this test cannot, from inside `cargo test`).
const RUN_BY_CI: &[&str] = &[
    "cargo test --locked",
    "cargo fmt --check && cargo clippy --all-targets -- -D warnings && cargo test --locked",
];

/// The dev identity-provider recipe, as both `docs/authentication.md` and the README show it.
const DEV_IDP_RECIPE: [&str; 7] = [
    "rm -f /tmp/idp.env",
    "cargo run --example dev_idp -- /tmp/idp.env &",
    "until [ -e /tmp/idp.env ]; do sleep 1; done",
    "env $(cat /tmp/idp.env) cargo run -- serve",
    "env $(cat /tmp/idp.env) cargo run -- send --user demo-user-1 --example account-balance",
    "env $(cat /tmp/idp.env) cargo run -- send --user demo-user-2 --example account-balance",
    "env $(cat /tmp/idp.env) cargo run -- send --example account-balance",
];

#[test]
fn every_readme_command_works() {
    let commands = bash_commands(&read("README.md"));
    // The dev identity-provider recipe runs in its own test, with its own server.
    let commands: Vec<_> = commands
        .into_iter()
        .filter(|c| !DEV_IDP_RECIPE.contains(&c.as_str()))
        .collect();
    let cargo_run = "cargo run -- ";
    let (serves, rest): (Vec<_>, Vec<_>) = commands
        .iter()
        .partition(|c| c.starts_with("cargo run -- serve"));
    assert_eq!(serves.len(), 1, "one serve command: {serves:?}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cx-webhook.db");
    let db = db.to_str().unwrap();
    // The README's command as written, on a free port (PORT=0) and a fresh database.
    let server = serve(
        &serves[0].replacen(cargo_run, &format!("{BIN} "), 1),
        &[("PORT", "0"), ("DATABASE_PATH", db)],
    );
    let url = format!("http://{}/webhook", server.address);
    let env = [("WEBHOOK_URL", url.as_str()), ("DATABASE_PATH", db)];
    let mut ran = 0;
    for command in rest {
        if RUN_BY_CI.contains(&command.as_str()) {
            continue;
        }
        let script = if command.starts_with(cargo_run) {
            command.replacen(cargo_run, &format!("{BIN} "), 1)
        } else if command.starts_with("curl ") {
            command.replace("localhost:8080", &server.address)
        } else {
            panic!("README command `{command}` is neither run here nor by .ci/run (RUN_BY_CI)");
        };
        let out = run(&script, &env);
        if command.contains("--example booking-create") {
            assert!(out.contains("\"booking_status\": \"confirmed\""), "{out}");
            assert!(out.contains("Your booking id is BK-"), "{out}");
        }
        if command.contains("--intent dealer.find") {
            assert!(out.contains("CarConnect dealers in Pune"), "{out}");
        }
        if command.contains("booking-validate-bad-date") || command.contains("--form") {
            assert!(out.contains("\"INVALID\""), "{out}");
        }
        ran += 1;
    }
    assert!(ran >= 8, "{ran} commands ran");
}

/// The recipe's lines, as docs/authentication.md and the README show them (checked), with the file
/// in a temporary directory and `cargo run` replaced by the built binaries.
#[test]
fn the_dev_idp_recipe_works() {
    let recipe = DEV_IDP_RECIPE;
    for doc in ["docs/authentication.md", "README.md"] {
        let commands = bash_commands(&read(doc));
        for line in recipe {
            assert!(
                commands.iter().any(|c| c == line),
                "{doc} lacks `{line}`: {commands:?}"
            );
        }
    }
    // `cargo test` builds the examples beside the test binaries (not with `--test api` alone).
    let exe = std::env::current_exe().unwrap();
    let dev_idp = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/dev_idp");
    assert!(
        dev_idp.exists(),
        "{} is missing: run `cargo build --example dev_idp` first (plain `cargo test` builds it)",
        dev_idp.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idp.env");
    let file = file.to_str().unwrap();
    let local = |line: &str| {
        line.replace("/tmp/idp.env", file)
            .replace(
                "cargo run --example dev_idp -- ",
                &format!("{} ", dev_idp.display()),
            )
            .replace("cargo run -- ", &format!("{BIN} "))
    };
    // Terminal 1: the identity provider in the background, then wait for its file.
    let mut idp = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{}\nexec {}",
            local(recipe[0]),
            local(recipe[1]).trim_end_matches('&')
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !Path::new(file).exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no {file}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let settings = std::fs::read_to_string(file).unwrap();
    assert!(settings.contains("\nWEBHOOK_TOKEN=ey"), "{settings}");
    assert!(!settings.contains("PORT=8080\n"), "{settings}");
    let dbdir = tempfile::tempdir().unwrap();
    let db = dbdir.path().join("cx.db");
    let server = serve(
        &local(recipe[3]),
        &[("DATABASE_PATH", db.to_str().unwrap())],
    );
    let port = settings
        .lines()
        .find_map(|l| l.strip_prefix("PORT="))
        .unwrap();
    assert_eq!(server.address, format!("127.0.0.1:{port}"));
    // Terminal 2: google-oidc accepts the agent's token; demo-user-1 owns A1001, demo-user-2 does
    // not, and without a signed-in user there is no account data.
    let out = run(&local(recipe[4]), &[]);
    assert!(out.contains("₹1,25,430.50"), "{out}");
    let out = run(&local(recipe[5]), &[]);
    assert!(out.contains("couldn't find account A1001"), "{out}");
    assert!(!out.contains("1,25,430"), "{out}");
    let out = run(&local(recipe[6]), &[]);
    assert!(out.contains("Please sign in first"), "{out}");
    assert!(!out.contains("1,25,430"), "{out}");
    // Without the token the same call is refused.
    let refused = Command::new(BIN)
        .args(["send", "--example", "account-balance", "--webhook-url"])
        .arg(format!("http://{}/webhook", server.address))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    drop(server);
    common::process::signal(&idp, libc::SIGTERM);
    let status = common::process::wait_exit(&mut idp, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
