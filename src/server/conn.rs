//! The connection layer under [`super::run`]: which connections are open, what each has received,
//! and when one may be closed without losing a request.
//!
//! - [`Tracker`] holds one permit per open connection (the cap, [`max_connections`]) and the list of
//!   open connections, oldest first. At the cap, the accept loop asks it to close the oldest
//!   connection that has not sent a complete request yet: nothing was received on it, so nothing
//!   is lost, and a new client is served instead of waiting behind silent sockets.
//! - [`Tracked`] wraps each socket. It watches the bytes the server reads and counts HTTP/1 request
//!   heads as they arrive (a small framing scanner: request line, headers, `Content-Length` body), so
//!   at shutdown the server knows whether more pipelined requests are already waiting behind the one
//!   it is answering.
//! - [`ConnState`] is what one connection has done: requests started, requests in flight, when it
//!   last went idle.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// File descriptors kept free for everything but client connections (the listener, the database,
/// outbound HTTP, logs), so the accept loop never meets EMFILE at the cap.
pub const FD_HEADROOM: usize = 128;

/// The connection cap: `configured`, or else the soft RLIMIT_NOFILE minus [`FD_HEADROOM`] (at least
/// 16). Returns the cap and the limit it was derived from (if it could be read).
pub fn max_connections(configured: Option<usize>) -> (usize, Option<u64>) {
    let limit = nofile_limit();
    let derived = limit
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX))
        .map_or(4096, |l| l.saturating_sub(FD_HEADROOM))
        .clamp(16, 1_000_000);
    (configured.unwrap_or(derived), limit)
}

fn nofile_limit() -> Option<u64> {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and has no other effect.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) };
    (rc == 0 && rlim.rlim_cur != libc::RLIM_INFINITY).then_some(rlim.rlim_cur)
}

/// The open connections and the cap on them.
pub struct Tracker {
    permits: Arc<Semaphore>,
    cap: usize,
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    draining: AtomicBool,
}

impl Tracker {
    pub fn new(cap: usize) -> Self {
        Tracker {
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// A free slot, if there is one now.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Waits for a free slot.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Waits until every connection has ended.
    pub async fn all_closed(&self) {
        let cap = u32::try_from(self.cap).unwrap_or(u32::MAX);
        let _all = self.permits.acquire_many(cap).await;
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Registers a connection holding `slot`.
    pub fn register(
        self: &Arc<Self>,
        stream: &TcpStream,
        slot: OwnedSemaphorePermit,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            accepted: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            scanner: Mutex::new(Scanner::default()),
            fd: stream.as_raw_fd(),
            signals: AtomicU8::new(if self.draining() { Signal::DRAINING } else { 0 }),
            waker: AtomicWaker::new(),
        });
        lock(&self.conns).insert(id, state.clone());
        Registration {
            tracker: self.clone(),
            id,
            state,
            _slot: slot,
        }
    }

    /// Closes the oldest connection that has not started a request yet; false if there is none.
    pub fn evict_oldest_unused(&self) -> bool {
        let mut conns = lock(&self.conns);
        let victim = conns
            .iter()
            .find(|(_, c)| c.requests.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(state) => {
                state.signal(Signal::EVICTED);
                true
            }
            None => false,
        }
    }

    /// From now on, answers say `Connection: close` once nothing more is waiting on their connection.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Raises `signal` (a [`Signal`] bit) on every open connection.
    pub fn signal_all(&self, signal: u8) {
        for state in lock(&self.conns).values() {
            state.signal(signal);
        }
    }
}

/// What the server asks of a connection's task, as bits of [`ConnState`]'s signals. Each wakes the
/// task once; the task sees which bits are new since it last looked.
pub struct Signal;

impl Signal {
    /// The tracker closed the connection to make room (it had no request yet).
    pub const EVICTED: u8 = 1;
    /// Shutdown began: finish what was received, then close.
    pub const DRAINING: u8 = 2;
    /// The grace period is over: close now.
    pub const ABORT: u8 = 4;
}

/// A registered connection; leaving the list and freeing the slot when dropped.
pub struct Registration {
    tracker: Arc<Tracker>,
    id: u64,
    pub state: Arc<ConnState>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.tracker.conns).remove(&self.id);
    }
}

/// What one connection has done so far.
pub struct ConnState {
    accepted: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `accepted` when the last request finished.
    idle_since_ms: AtomicU64,
    scanner: Mutex<Scanner>,
    fd: RawFd,
    /// [`Signal`] bits raised so far.
    signals: AtomicU8,
    /// The connection task's waker, woken when a signal is raised. Registering an unchanged waker
    /// is a compare and a swap: the connection task polls this on every wake-up, where a
    /// `Notify` or `watch` receiver took a lock each time.
    waker: AtomicWaker,
}

impl ConnState {
    /// Marks a request as started (its head is complete); the guard marks it finished.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// When this connection may be closed for idleness, if nothing is in flight: `first` after the
    /// accept while no request has come, `idle` after the last answer once one has.
    pub fn idle_deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.requests.load(Ordering::Acquire) == 0 {
            return Some(self.accepted + first);
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.accepted + since + idle)
    }

    /// Raises `signal` and wakes the connection's task.
    pub fn signal(&self, signal: u8) {
        self.signals.fetch_or(signal, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Ready with every signal raised so far once one not in `seen` is.
    pub fn poll_signals(&self, cx: &mut Context<'_>, seen: u8) -> Poll<u8> {
        let raised = self.signals.load(Ordering::Acquire);
        if raised & !seen != 0 {
            return Poll::Ready(raised);
        }
        self.waker.register(cx.waker());
        // A signal raised before the registration finished woke no one: look again.
        let raised = self.signals.load(Ordering::Acquire);
        if raised & !seen != 0 {
            Poll::Ready(raised)
        } else {
            Poll::Pending
        }
    }

    /// Whether a request has started on this connection.
    pub fn used(&self) -> bool {
        self.requests.load(Ordering::Acquire) > 0
    }

    /// Whether the client spoke HTTP/2 (seen in its preface).
    pub fn is_h2(&self) -> bool {
        matches!(lock(&self.scanner).state, Framing::H2)
    }

    /// Whether the connection is quiet: nothing in flight, no further request received (complete or
    /// begun) and no unread bytes in the socket. Closing a quiet connection loses nothing.
    pub fn quiet(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.more_waiting(false)
    }

    /// Whether more request bytes are waiting behind what is being answered: request heads received
    /// but not started, a head begun, or unread bytes in the socket (while `answering` a request
    /// whose body was not read to the end, those are its body and do not count).
    fn more_waiting(&self, answering: bool) -> bool {
        let started = self.requests.load(Ordering::Acquire);
        let scanner = lock(&self.scanner);
        scanner.heads > started
            || scanner.head_begun()
            || ((!answering || scanner.body_done()) && unread_bytes(self.fd))
    }
}

/// One request in flight; finishing (or dropping) it marks it done.
pub struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    /// Whether the answer should close the connection while the server drains: true unless more
    /// requests are already waiting on it (those are answered first, the last one closes).
    pub fn close_after(&self, tracker: &Tracker) -> bool {
        tracker.draining() && !self.0.more_waiting(true)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let ms = self.0.accepted.elapsed().as_millis();
        self.0
            .idle_since_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether the socket holds bytes nobody has read yet.
fn unread_bytes(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `fd` belongs to a socket owned by the connection this state describes, which outlives
    // every caller; MSG_PEEK | MSG_DONTWAIT reads nothing and never blocks.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

/// A socket whose reads feed its connection's [`Scanner`].
pub struct Tracked {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl Tracked {
    pub fn new(stream: TcpStream, state: Arc<ConnState>) -> Self {
        Tracked { stream, state }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                lock(&this.state.scanner).feed(new);
            }
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The longest request line or header line the scanner follows; past it, it stops counting (hyper
/// refuses such heads anyway).
const MAX_LINE: usize = 16 * 1024;

/// Counts HTTP/1 request heads in the bytes read from a connection. It only needs the framing:
/// request line, header lines, the empty line, then `Content-Length` bytes of body. Anything it does
/// not follow (chunked bodies, HTTP/2) ends the counting; callers then assume nothing is pipelined.
#[derive(Debug, Default)]
struct Scanner {
    state: Framing,
    /// Complete request heads seen.
    heads: u64,
}

#[derive(Debug)]
enum Framing {
    /// Reading a head: the current line so far, whether the request line was seen, and the body
    /// length declared so far.
    Head {
        line: Vec<u8>,
        request_line_seen: bool,
        content_length: u64,
    },
    /// Inside a body, this many bytes left.
    Body(u64),
    /// The client speaks HTTP/2.
    H2,
    /// Framing this scanner does not follow.
    Unknown,
}

impl Default for Framing {
    fn default() -> Self {
        Framing::Head {
            line: Vec::new(),
            request_line_seen: false,
            content_length: 0,
        }
    }
}

impl Scanner {
    fn head_begun(&self) -> bool {
        matches!(&self.state, Framing::Head { line, request_line_seen, .. }
            if *request_line_seen || line.iter().any(|b| !b"\r\n".contains(b)))
    }

    fn body_done(&self) -> bool {
        matches!(self.state, Framing::Head { .. })
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                Framing::Body(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = Framing::default();
                    }
                }
                Framing::Head { line, .. } => {
                    // memchr finds the line end with SIMD; a line is copied only when it spans
                    // two reads (the common whole line is examined where it lies).
                    let Some(end) = memchr::memchr(b'\n', bytes) else {
                        if line.len() + bytes.len() > MAX_LINE {
                            self.state = Framing::Unknown;
                        } else {
                            line.extend_from_slice(bytes);
                        }
                        return;
                    };
                    let (this, rest) = bytes.split_at(end + 1);
                    bytes = rest;
                    if line.len() + this.len() > MAX_LINE {
                        self.state = Framing::Unknown;
                        return;
                    }
                    if line.is_empty() {
                        self.end_of_line(this);
                    } else {
                        line.extend_from_slice(this);
                        let mut whole = std::mem::take(line);
                        self.end_of_line(&whole);
                        if let Framing::Head { line, .. } = &mut self.state {
                            whole.clear();
                            *line = whole;
                        }
                    }
                }
                Framing::H2 | Framing::Unknown => return,
            }
        }
    }

    /// Takes one whole line (with its `\n`) of a request head.
    fn end_of_line(&mut self, line: &[u8]) {
        let Framing::Head {
            request_line_seen,
            content_length,
            ..
        } = &mut self.state
        else {
            return;
        };
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if !*request_line_seen {
            if text.is_empty() {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
            } else if text == b"PRI * HTTP/2.0" {
                self.state = Framing::H2;
            } else if text.ends_with(b" HTTP/1.1") || text.ends_with(b" HTTP/1.0") {
                *request_line_seen = true;
            } else {
                self.state = Framing::Unknown;
            }
        } else if text.is_empty() {
            let body = *content_length;
            self.heads += 1;
            self.state = if body > 0 {
                Framing::Body(body)
            } else {
                Framing::default()
            };
        } else if !matches!(text[0].to_ascii_lowercase(), b'c' | b't' | b' ' | b'\t') {
            // Only Content-Length and Transfer-Encoding matter (and, trimmed, a line that starts
            // with blanks): every other header line is passed over without looking for its colon.
        } else if let Some(colon) = text.iter().position(|&b| b == b':') {
            let name = text[..colon].trim_ascii();
            let value = text[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                match std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    Some(n) => *content_length = n,
                    None => self.state = Framing::Unknown,
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                self.state = Framing::Unknown;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Scanner {
        let mut s = Scanner::default();
        for c in chunks {
            s.feed(c);
        }
        s
    }

    #[test]
    fn counts_pipelined_heads_and_skips_bodies() {
        let one =
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":\"\r\n\r\n\"}";
        let two = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut all = one.to_vec();
        all.extend_from_slice(two);
        all.extend_from_slice(two);
        let s = scan(&[&all]);
        assert_eq!(s.heads, 3);
        assert!(!s.head_begun());
        // The same bytes one at a time.
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(scan(&bytes).heads, 3);
    }

    #[test]
    fn a_begun_head_is_seen_and_leading_blank_lines_are_not() {
        let s = scan(&[b"GET /health HTTP/1.1\r\n\r\n\r\nGET /hea"]);
        assert_eq!(s.heads, 1);
        assert!(s.head_begun());
        let s = scan(&[b"GET /health HTTP/1.1\r\n\r\n\r\n"]);
        assert!(!s.head_begun());
    }

    #[test]
    fn only_the_framing_headers_count_whatever_their_case() {
        // Headers that start like the framing ones, and a value that names one, change nothing.
        let head =
            b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n\
            TE: trailers\r\nCookie: content-length=3\r\nX-Note: content-length: 99\r\n\
            CONTENT-LENGTH: 4\r\n\r\n{}{}GET / HTTP/1.1\r\n\r\n";
        let s = scan(&[head]);
        assert_eq!(s.heads, 2);
        assert!(s.body_done());
        let s = scan(&[b"POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\n\r\n"]);
        assert!(matches!(s.state, Framing::Unknown));
        let s = scan(&[b"POST / HTTP/1.1\r\nX-A: 1\r\n  content-length: 7\r\n\r\n"]);
        assert!(matches!(s.state, Framing::Body(7)));
    }

    #[test]
    fn stops_at_framing_it_does_not_follow() {
        let s = scan(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert!(matches!(s.state, Framing::H2));
        let s = scan(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ]);
        assert!(matches!(s.state, Framing::Unknown));
        assert_eq!(s.heads, 0);
        let s = scan(&[b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"]);
        assert!(matches!(s.state, Framing::Unknown));
        let long = vec![b'a'; MAX_LINE + 1];
        assert!(matches!(scan(&[&long]).state, Framing::Unknown));
    }
}
