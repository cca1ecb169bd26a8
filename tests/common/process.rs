//! Running the real `cx-webhook` binary in tests: start it on an ephemeral port with a database in a
//! temporary directory, read the address it logs, signal it, wait for it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to start the binary.
pub struct Binary {
    envs: Vec<(String, OsString)>,
    uid: Option<u32>,
    nofile: Option<u64>,
    exe: std::path::PathBuf,
}

impl Binary {
    /// The binary with local settings and `DATABASE_PATH` in `dir`.
    pub fn new(dir: &tempfile::TempDir) -> Self {
        Binary {
            envs: vec![(
                "DATABASE_PATH".into(),
                dir.path().join("cx-webhook.db").into_os_string(),
            )],
            uid: None,
            nofile: None,
            exe: env!("CARGO_BIN_EXE_cx-webhook").into(),
        }
    }

    /// Adds or overrides an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Runs the process as this uid and gid (tests run as root in CI). The executable is copied into
    /// `dir` first: the checkout's `target/` may sit where that user cannot reach (e.g. under /root).
    pub fn run_as(mut self, uid: u32, dir: &tempfile::TempDir) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let copy = dir.path().join("cx-webhook");
        std::fs::copy(&self.exe, &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.exe = copy;
        self.uid = Some(uid);
        self
    }

    /// Runs the process with this RLIMIT_NOFILE (soft and hard), like `ulimit -n`.
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.env_clear()
            .env("AUTH_MODE", "none")
            .env("BIND", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        if let Some(limit) = self.nofile {
            let rlim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: setrlimit is async-signal-safe and only touches the child's own limits.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd
    }

    /// Runs it to completion (for start-up failures).
    pub fn run(&self) -> std::process::Output {
        retry_busy(|| self.command().output()).expect("binary runs")
    }

    /// Starts it and waits for its "listening" line; returns the child and its address.
    /// Every later stdout line is collected into the returned log buffer.
    pub fn start(&self) -> (Child, String) {
        let (child, address, _) = self.start_with_log();
        (child, address)
    }

    /// Like [`Binary::start`], also returning the log lines (collected as they come).
    pub fn start_with_log(&self) -> (Child, String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let mut child = retry_busy(|| {
            self.command()
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .expect("binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let address = loop {
            let line = lines
                .next()
                .expect("the binary logs before exiting")
                .expect("utf-8");
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            log.lock().unwrap().push(line);
            if v["message"] == "listening" {
                break v["address"].as_str().unwrap().to_owned();
            }
        };
        let sink = log.clone();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        (child, address, log)
    }
}

/// Sends `signal` to the child.
pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill failed");
}

/// Waits for the child to exit, killing it (and failing) after `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `POST /webhook` over a plain socket (`connection: close`); returns the raw HTTP answer.
pub fn post(address: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Sends SIGTERM and asserts a clean exit (code 0) within 15 s.
pub fn terminate(child: &mut Child) {
    signal(child, libc::SIGTERM);
    assert_eq!(wait_exit(child, Duration::from_secs(15)).code(), Some(0));
}

/// Retries `start` while it fails with ETXTBSY. A test that copies the binary (`run_as`) races
/// other test threads that fork: a child forked while the copy is open for writing holds that
/// descriptor until its own exec, and exec of a file open for writing fails with ETXTBSY.
fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    for _ in 0..100 {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
    start()
}
