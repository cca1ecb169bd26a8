//! Benchmark tool, not part of the service: sends a fixed number of POSTs one after another over one
//! keep-alive HTTP/1.1 connection and checks that each is answered 200. `scripts/callgrind.sh` uses it
//! to drive a server running under valgrind with an exact request count (wrk counts time, not calls).
//!
//! ```text
//! post_loop ADDRESS PATH BODY_FILE COUNT [AUTHORIZATION [HEADER_LINE ...]]
//! ```
//!
//! Each HEADER_LINE (`name: value`) is sent as written, after the Authorization header (an empty
//! AUTHORIZATION sends none).
//!
//! Plain std, no async runtime: the client's own cost stays out of the server's profile anyway, and
//! a hand-written request is byte-for-byte the same every time. Exit code 1 on any non-200 answer or
//! I/O error, naming the call that failed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!(
            "usage: post_loop ADDRESS PATH BODY_FILE COUNT [AUTHORIZATION [HEADER_LINE ...]]"
        );
        return ExitCode::from(2);
    }
    let (address, path, file) = (&args[1], &args[2], &args[3]);
    let Ok(count) = args[4].parse::<u64>() else {
        eprintln!("COUNT must be a number, not {}", args[4]);
        return ExitCode::from(2);
    };
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n",
        body.len()
    );
    if let Some(auth) = args.get(5).filter(|a| !a.is_empty()) {
        request.push_str(&format!("authorization: {auth}\r\n"));
    }
    for line in args.iter().skip(6) {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(&body);

    match run(address, &request, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("post_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(address: &str, request: &[u8], count: u64) -> Result<(), String> {
    let stream = TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    for call in 1..=count {
        writer
            .write_all(request)
            .map_err(|e| format!("call {call}: send: {e}"))?;
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("call {call}: read: {e}"))?;
        if !line.starts_with("HTTP/1.1 200") {
            return Err(format!("call {call}: answered {}", line.trim_end()));
        }
        let mut length = None;
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("call {call}: read: {e}"))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| format!("call {call}: no content-length"))?;
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("call {call}: read body: {e}"))?;
    }
    Ok(())
}
