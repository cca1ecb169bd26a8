//! Logging: one JSON object per line in the shape Cloud Logging reads, or a human format on a terminal.
//!
//! The JSON layer writes `severity` (Cloud Logging's names), `message`, `time` (RFC 3339), `target`,
//! the event's fields and the fields of every enclosing span (inner spans win). Span fields named
//! `trace_id`, `span_id` and `trace_sampled` become `logging.googleapis.com/trace` (as
//! `projects/<id>/traces/<trace>`, when the project id is known), `logging.googleapis.com/spanId`
//! (16 hex digits) and `logging.googleapis.com/trace_sampled`, so request logs group under their
//! trace. WARNING and above carry `logging.googleapis.com/sourceLocation`. No line has a prefix:
//! Cloud Run parses only whole-line JSON.
//!
//! The line's own keys (`severity`, `time`, `message`, `target`) win over fields of the same name,
//! so every key appears once.
//!
//! Lines are formatted into a reused per-thread buffer (span fields are kept already encoded as
//! JSON) and, for the installed subscriber, handed to a writer thread ([`LogPipe`]): the request
//! threads make no `write` call, and under load lines go out in batches. The guard [`init`] returns
//! writes out what is queued when `main` ends, so a SIGTERM shutdown loses no line.
//!
//! Nothing here logs request bodies, tokens or keys; callers must not pass them as fields either.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Log line format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One Cloud Logging JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Logging settings, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format; default: json when stdout is not a terminal, text when it is.
    #[arg(long, env = "LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `cx_webhook=debug,info`.
    #[arg(
        long = "rust-log",
        alias = "log-filter",
        value_name = "FILTER",
        env = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub log_filter: String,

    /// Google Cloud project id, used to link log lines to Cloud Trace traces.
    #[arg(
        long = "google-cloud-project",
        alias = "project-id",
        value_name = "PROJECT",
        env = "GOOGLE_CLOUD_PROJECT",
        global = true,
        hide_short_help = true
    )]
    pub project_id: Option<String>,
}

/// Installs the global subscriber, writing to stdout off the calling threads (see [`LogPipe`]).
/// Fails if the filter does not parse or a subscriber exists. Keep the returned guard until the end
/// of `main`: dropping it writes out every line logged before.
pub fn init(args: &LogArgs) -> Result<LogGuard, String> {
    let pipe = LogPipe::start(Sink::Stdout);
    init_with(args, pipe.clone(), std::io::stdout().is_terminal())?;
    Ok(LogGuard(Some(pipe)))
}

/// Like [`init`], writing to stderr: for commands whose stdout is their result.
pub fn init_stderr(args: &LogArgs) -> Result<LogGuard, String> {
    let pipe = LogPipe::start(Sink::Stderr);
    init_with(args, pipe.clone(), std::io::stderr().is_terminal())?;
    Ok(LogGuard(Some(pipe)))
}

fn init_with<W>(args: &LogArgs, make_writer: W, terminal: bool) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = args.log_format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    // A filter of plain `target=level` directives (`info`, `cx_webhook=debug,warn`) is decided once
    // per log site; EnvFilter, needed only for span and field directives, also takes a lock and a
    // thread-local stack on every span enter and exit.
    let filter: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> =
        match args.log_filter.parse::<Targets>() {
            Ok(targets) => Box::new(targets),
            Err(_) => Box::new(EnvFilter::try_new(&args.log_filter).map_err(|e| {
                format!("RUST_LOG: `{}` is not a valid filter: {e}", args.log_filter)
            })?),
        };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(CloudLoggingLayer::new(args.project_id.clone(), make_writer))
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(make_writer),
            )
            .try_init(),
    };
    result.map_err(|e| format!("logging: {e}"))
}

/// Where a [`LogPipe`] writes.
#[derive(Debug, Clone)]
enum Sink {
    Stdout,
    Stderr,
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
}

/// Hands log lines to a writer thread, so the threads that log never make a `write` call: a line is
/// appended to a shared buffer under a short lock, and the writer thread writes whatever gathered
/// in one call, then waits [`LogPipe::GATHER`] so that under load lines go out in batches. An idle
/// writer is woken by the first line, so a lone line goes out at once. Nothing is dropped: when
/// [`LogPipe::MAX_PENDING`] bytes wait (stdout blocked), loggers wait for room, as a blocking write
/// would. [`LogGuard`] writes out the rest at exit.
///
/// Hand-written rather than tracing-appender's `non_blocking`, which allocates and sends each line
/// through a channel, wakes its thread per line and by default drops lines when its queue is full.
#[derive(Clone)]
pub struct LogPipe(std::sync::Arc<PipeShared>);

struct PipeShared {
    state: std::sync::Mutex<PipeState>,
    /// Signalled when the idle writer has a line, or at shutdown.
    writer: std::sync::Condvar,
    /// Signalled when the writer took the buffer and loggers wait for room.
    room: std::sync::Condvar,
    sink: Sink,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct PipeState {
    pending: Vec<u8>,
    writer_idle: bool,
    loggers_waiting: usize,
    closed: bool,
}

impl LogPipe {
    /// How long the writer lets lines gather after a write.
    pub const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
    /// Bytes that may wait before loggers wait for the writer.
    pub const MAX_PENDING: usize = 4 << 20;

    fn start(sink: Sink) -> LogPipe {
        let pipe = LogPipe(std::sync::Arc::new(PipeShared {
            state: std::sync::Mutex::default(),
            writer: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
            sink,
            thread: std::sync::Mutex::new(None),
        }));
        let shared = pipe.0.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || shared.run());
        match spawned {
            Ok(handle) => *pipe.0.lock_thread() = Some(handle),
            // No thread: lines are written by the loggers themselves.
            Err(_) => pipe.0.lock().closed = true,
        }
        pipe
    }

    fn push(&self, bytes: &[u8]) {
        let shared = &*self.0;
        let mut state = shared.lock();
        while state.pending.len() >= Self::MAX_PENDING && !state.closed {
            state.loggers_waiting += 1;
            state = shared
                .room
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.loggers_waiting -= 1;
        }
        if state.closed {
            // After shutdown (or without a writer thread): write directly.
            drop(state);
            shared.write(bytes);
            return;
        }
        state.pending.extend_from_slice(bytes);
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            shared.writer.notify_one();
        }
    }
}

impl PipeShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_thread(&self) -> std::sync::MutexGuard<'_, Option<std::thread::JoinHandle<()>>> {
        self.thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        // A line that cannot be written has nowhere else to go.
        let _ = match &self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(bytes),
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            #[cfg(test)]
            Sink::Memory(buf) => {
                buf.lock().unwrap().extend_from_slice(bytes);
                Ok(())
            }
        };
    }

    /// The writer thread: writes what gathered until closed and drained.
    fn run(&self) {
        let mut out = Vec::new();
        loop {
            let mut state = self.lock();
            while state.pending.is_empty() {
                if state.closed {
                    return;
                }
                state.writer_idle = true;
                state = self
                    .writer
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            state.writer_idle = false;
            std::mem::swap(&mut state.pending, &mut out);
            let closed = state.closed;
            let waiting = state.loggers_waiting > 0;
            drop(state);
            if waiting {
                self.room.notify_all();
            }
            self.write(&out);
            out.clear();
            if out.capacity() > LogPipe::MAX_PENDING {
                out = Vec::new();
            }
            if !closed {
                std::thread::sleep(LogPipe::GATHER);
            }
        }
    }
}

impl Write for &LogPipe {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.push(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogPipe {
    type Writer = &'a LogPipe;
    fn make_writer(&'a self) -> &'a LogPipe {
        self
    }
}

/// Keeps the log writer thread; dropping it writes out every pending line and stops the thread
/// (later lines are written directly by whoever logs them).
#[must_use = "dropping the guard stops the log writer thread"]
pub struct LogGuard(Option<LogPipe>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(pipe) = self.0.take() {
            pipe.0.lock().closed = true;
            pipe.0.writer.notify_one();
            pipe.0.room.notify_all();
            if let Some(thread) = pipe.0.lock_thread().take() {
                let _ = thread.join();
            }
        }
    }
}

/// A `tracing` layer writing Cloud Logging JSON lines to `W`.
///
/// Each line is formatted into a reused per-thread buffer and handed to the writer in one
/// `write_all`; span fields are kept pre-encoded as JSON, so an event copies them instead of
/// rebuilding a map.
pub struct CloudLoggingLayer<W> {
    /// `,"logging.googleapis.com/trace":"projects/PROJECT/traces/` (PROJECT escaped), written
    /// once: a line with a trace id appends the id and the closing quote.
    trace_prefix: Option<Vec<u8>>,
    make_writer: W,
}

impl<W> CloudLoggingLayer<W> {
    /// A layer linking traces to `project_id` (if known) and writing to `make_writer`.
    pub fn new(project_id: Option<String>, make_writer: W) -> Self {
        let trace_prefix = project_id.filter(|p| !p.is_empty()).map(|project| {
            let mut prefix = b",\"logging.googleapis.com/trace\":".to_vec();
            crate::cx::json::push_str(&mut prefix, &format!("projects/{project}/traces/"));
            prefix.pop(); // the closing quote comes after the trace id
            prefix
        });
        CloudLoggingLayer {
            trace_prefix,
            make_writer,
        }
    }
}

/// Field names the line itself sets; a span or event field of the same name is left out.
const RESERVED: [&str; 4] = ["severity", "time", "message", "target"];

/// Recorded fields as JSON: each entry names a field and the byte range of its encoded value in
/// `json`. A field recorded again replaces the entry (the old bytes stay unused).
#[derive(Default)]
struct Fields {
    json: Vec<u8>,
    entries: Vec<(&'static str, std::ops::Range<usize>)>,
    /// The event's `message` (events only).
    message: Option<std::ops::Range<usize>>,
    /// Scratch for `Debug` values.
    text: String,
}

impl Fields {
    fn clear(&mut self) {
        self.json.clear();
        self.entries.clear();
        self.message = None;
    }

    fn set(&mut self, name: &'static str, value: std::ops::Range<usize>) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    fn value(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| &self.json[r.clone()])
    }

    fn remove(&mut self, name: &str) -> Option<std::ops::Range<usize>> {
        let at = self.entries.iter().position(|(n, _)| *n == name)?;
        Some(self.entries.remove(at).1)
    }

    /// Encodes `value` at the end of `json` and records it under `field`.
    fn record<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        let start = self.json.len();
        if serde_json::to_writer(&mut self.json, value).is_err() {
            self.json.truncate(start);
            self.json.extend_from_slice(b"null");
        }
        self.recorded(field, start);
    }

    /// Records the value encoded at `json[start..]` under `field`.
    fn recorded(&mut self, field: &Field, start: usize) {
        let range = start..self.json.len();
        if field.name() == "message" {
            self.message = Some(range);
        } else {
            self.set(field.name(), range);
        }
    }

    /// Copies `other`'s fields in, replacing those of the same name.
    fn merge(&mut self, other: &Fields) {
        for (name, range) in &other.entries {
            let start = self.json.len();
            self.json.extend_from_slice(&other.json[range.clone()]);
            self.set(name, start..self.json.len());
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let start = self.json.len();
        crate::cx::json::push_str(&mut self.json, value);
        self.recorded(field, start);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, &error_chain(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
        self.text = text;
    }
}

/// The recorded fields of a span, kept in its extensions.
struct SpanFields(Fields);

/// Per-thread buffers of the event being formatted.
#[derive(Default)]
struct Scratch {
    fields: Fields,
    line: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

impl<S, W> Layer<S> for CloudLoggingLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            // Sized once for a request span's few short fields, so recording them (now or later
            // with `Span::record`) does not grow the buffers step by step.
            let mut fields = Fields {
                json: Vec::with_capacity(256),
                entries: Vec::with_capacity(8),
                ..Fields::default()
            };
            attrs.record(&mut fields);
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                values.record(&mut fields.0);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A `Debug` impl that logs would re-enter on this thread: it gets fresh buffers.
        let mut fresh = None;
        SCRATCH.with(|cell| {
            let mut guard = cell.try_borrow_mut().ok();
            let scratch = match guard.as_deref_mut() {
                Some(s) => s,
                None => fresh.insert(Scratch::default()),
            };
            self.format(event, &ctx, scratch);
            let _ = self.make_writer.make_writer().write_all(&scratch.line);
        });
    }
}

impl<W> CloudLoggingLayer<W> {
    /// Formats `event` as one JSON line (with its newline) into `scratch.line`.
    fn format<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, scratch: &mut Scratch)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let fields = &mut scratch.fields;
        fields.clear();
        if let Some(leaf) = ctx.event_span(event) {
            let merge =
                |fields: &mut Fields, span: &tracing_subscriber::registry::SpanRef<'_, S>| {
                    if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                        fields.merge(&span_fields.0);
                    }
                };
            if leaf.parent().is_none() {
                // The usual case, an event in a request's one span: no scope to collect.
                merge(fields, &leaf);
            } else {
                for span in leaf.scope().from_root() {
                    merge(fields, &span);
                }
            }
        }
        event.record(fields);

        let line = &mut scratch.line;
        line.clear();
        line.extend_from_slice(b"{\"severity\":\"");
        line.extend_from_slice(severity(meta.level()).as_bytes());
        line.extend_from_slice(b"\",\"time\":\"");
        push_rfc3339(line, jiff::Timestamp::now());
        line.extend_from_slice(b"\"");

        // The trace id as recorded is a JSON string: its escaped inside goes into the link as is.
        if let Some(prefix) = &self.trace_prefix
            && let Some(trace) = fields.value("trace_id")
            && let [b'"', trace @ .., b'"'] = trace
        {
            line.extend_from_slice(prefix);
            line.extend_from_slice(trace);
            line.push(b'"');
            fields.remove("trace_id");
        }
        for (name, range) in &fields.entries {
            match *name {
                "span_id" => line.extend_from_slice(b",\"logging.googleapis.com/spanId\":"),
                "trace_sampled" => {
                    line.extend_from_slice(b",\"logging.googleapis.com/trace_sampled\":");
                }
                n if RESERVED.contains(&n) => continue,
                n => {
                    line.push(b',');
                    crate::cx::json::push_str(line, n);
                    line.push(b':');
                }
            }
            line.extend_from_slice(&fields.json[range.clone()]);
        }
        line.extend_from_slice(b",\"message\":");
        match &fields.message {
            Some(range) => line.extend_from_slice(&fields.json[range.clone()]),
            None => line.extend_from_slice(b"\"\""),
        }
        line.extend_from_slice(b",\"target\":");
        crate::cx::json::push_str(line, meta.target());
        if *meta.level() <= Level::WARN {
            line.extend_from_slice(b",\"logging.googleapis.com/sourceLocation\":{");
            if let Some(file) = meta.file() {
                line.extend_from_slice(b"\"file\":");
                let _ = serde_json::to_writer(&mut *line, file);
                line.push(b',');
            }
            if let Some(l) = meta.line() {
                let _ = write!(line, "\"line\":\"{l}\",");
            }
            line.extend_from_slice(b"\"function\":");
            let _ = serde_json::to_writer(&mut *line, meta.target());
            line.push(b'}');
        }
        line.extend_from_slice(b"}\n");
    }
}

/// Appends `time` as jiff's `Display` writes it (`2026-12-02T10:15:30.123456789Z`, the fraction
/// without trailing zeros and left out when zero), without the formatting machinery: this runs
/// on every log line.
fn push_rfc3339(out: &mut Vec<u8>, time: jiff::Timestamp) {
    let seconds = time.as_second();
    let nanos = time.subsec_nanosecond();
    // A negative fraction belongs to the second before.
    let (seconds, nanos) = if nanos < 0 {
        (seconds - 1, nanos + 1_000_000_000)
    } else {
        (seconds, nanos)
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let digits = |out: &mut Vec<u8>, mut value: i64, width: usize| {
        let mut text = [b'0'; 9];
        for slot in text[..width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        out.extend_from_slice(&text[..width]);
    };
    if (0..=9999).contains(&year) {
        digits(out, year, 4);
    } else {
        // Outside jiff's usual range: let it write the whole thing.
        let _ = write!(out, "{time}");
        return;
    }
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, of_day / 3600, 2);
    out.push(b':');
    digits(out, of_day / 60 % 60, 2);
    out.push(b':');
    digits(out, of_day % 60, 2);
    if nanos != 0 {
        out.push(b'.');
        let mut fraction = i64::from(nanos);
        let mut width = 9;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        digits(out, fraction, width);
    }
    out.push(b'Z');
}

/// An error and its sources, joined by `: ` (for logs; never shown to callers). A source whose text
/// the message already holds is left out, since some libraries repeat their causes in their messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = e.source();
    }
    out
}

/// W3C / Cloud Trace context of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits, when the caller sent a span.
    pub span_id: Option<String>,
    /// Whether the caller sampled this trace.
    pub sampled: bool,
}

impl TraceContext {
    /// Reads `traceparent` (preferred) or `X-Cloud-Trace-Context` (`TRACE/SPAN;o=1`, SPAN decimal);
    /// the second is looked up only when the first is absent or invalid (Cloud Run sends both).
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        // Names built at compile time: a lookup by `&str` parses and lower-cases the name first.
        static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
        static CLOUD_TRACE: http::HeaderName =
            http::HeaderName::from_static("x-cloud-trace-context");
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        header(&TRACEPARENT)
            .and_then(Self::from_traceparent)
            .or_else(|| header(&CLOUD_TRACE).and_then(Self::from_cloud_trace))
    }

    /// `VERSION-TRACE-SPAN-FLAGS`, each of fixed length (2, 32, 16, 2 hex digits), and for versions
    /// after 00 possibly more fields after another `-`. Read at fixed offsets: this runs on every
    /// call on Cloud Run.
    fn from_traceparent(value: &str) -> Option<Self> {
        let b = value.trim().as_bytes();
        let dashes = b.len() >= 55 && b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
        if !dashes || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let (version, trace, span, flags) = (&b[..2], &b[3..35], &b[36..52], &b[53..55]);
        let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
        if !(hex(version) && hex(trace) && hex(span) && hex(flags)) || version == b"ff" {
            return None;
        }
        if trace.iter().all(|&b| b == b'0') || span.iter().all(|&b| b == b'0') {
            return None;
        }
        let lower = |s: &[u8]| String::from_utf8(s.to_ascii_lowercase()).ok();
        let sampled = (flags[1] as char).to_digit(16)? & 1 == 1;
        Some(TraceContext {
            trace_id: lower(trace)?,
            span_id: Some(lower(span)?),
            sampled,
        })
    }

    fn from_cloud_trace(value: &str) -> Option<Self> {
        let (ids, options) = value.trim().split_once(';').unwrap_or((value.trim(), ""));
        let (trace, span) = ids.split_once('/').unwrap_or((ids, ""));
        if trace.len() != 32 || !trace.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let span_id = span
            .parse::<u64>()
            .ok()
            .filter(|s| *s != 0)
            .map(|s| format!("{s:016x}"));
        Some(TraceContext {
            trace_id: trace.to_ascii_lowercase(),
            span_id,
            sampled: options.trim() == "o=1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// An error with a message and an optional cause.
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Failure {
        message: String,
        #[source]
        cause: Option<Box<Failure>>,
    }

    fn failure(message: &str, cause: Option<Failure>) -> Failure {
        Failure {
            message: message.into(),
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn log_times_read_as_jiff_writes_them() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut cases = vec![
            jiff::Timestamp::UNIX_EPOCH,
            jiff::Timestamp::new(951_782_400, 0).unwrap(), // 2000-02-29
            jiff::Timestamp::new(-1, 500_000_000).unwrap(),
            jiff::Timestamp::new(253_402_207_199, 999_999_999).unwrap(), // 9999-12-30
            jiff::Timestamp::new(1_795_168_800, 120_000_000).unwrap(),
        ];
        for _ in 0..10_000 {
            let seconds = (next() % 253_402_207_200) as i64 - 31_067_798_400;
            let nanos =
                [0, (next() % 1_000_000_000) as i32, 1_000, 10_000_000][next() as usize % 4];
            cases.push(jiff::Timestamp::new(seconds, nanos).unwrap());
        }
        for time in cases {
            let mut ours = Vec::new();
            push_rfc3339(&mut ours, time);
            assert_eq!(String::from_utf8(ours).unwrap(), time.to_string());
        }
    }

    #[test]
    fn error_chains_name_each_cause_once() {
        let io = failure("connection refused", None);
        let transport = failure("transport error: connection refused", Some(io));
        let top = failure("cannot fetch the token", Some(transport));
        assert_eq!(
            error_chain(&top),
            "cannot fetch the token: transport error: connection refused"
        );
        let plain = failure("a", Some(failure("b", Some(failure("c", None)))));
        assert_eq!(error_chain(&plain), "a: b: c");
    }

    fn capture(project: Option<&str>, f: impl FnOnce()) -> Vec<Value> {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::registry().with(CloudLoggingLayer::new(
            project.map(String::from),
            buf.clone(),
        ));
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_have_cloud_logging_keys_and_trace() {
        let lines = capture(Some("proj"), || {
            let span = tracing::info_span!(
                "webhook",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
                trace_sampled = true,
                tag = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("tag", "weather");
            tracing::warn!(latency_ms = 12u64, "slow {}", "call");
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["severity"], "WARNING");
        assert_eq!(l["message"], "slow call");
        assert_eq!(l["tag"], "weather");
        assert_eq!(l["latency_ms"], 12);
        assert_eq!(
            l["logging.googleapis.com/trace"],
            "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(l["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(l["logging.googleapis.com/trace_sampled"], true);
        assert!(l["logging.googleapis.com/sourceLocation"]["file"].is_string());
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_trace_link_is_valid_json_whatever_the_project_and_trace_hold() {
        let lines = capture(Some("p\"r\\o/é"), || {
            let span = tracing::info_span!("r", trace_id = "a\"b\u{1}c");
            let _g = span.enter();
            tracing::info!("hi");
        });
        assert_eq!(
            lines[0]["logging.googleapis.com/trace"],
            "projects/p\"r\\o/é/traces/a\"b\u{1}c"
        );
        assert!(lines[0].get("trace_id").is_none());
    }

    #[test]
    fn event_fields_win_over_span_fields_and_keys_stay_unique() {
        let buf = Buf::default();
        let subscriber =
            tracing_subscriber::registry().with(CloudLoggingLayer::new(None, buf.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("o", tag = "outer", time = "span time");
            let _o = outer.enter();
            let inner = tracing::info_span!("i", tag = tracing::field::Empty);
            let _i = inner.enter();
            inner.record("tag", "first");
            inner.record("tag", "inner \"quoted\"");
            tracing::info!(caller = "a@b", n = 1.5f64, "done");
            tracing::info!(tag = "event", "again");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            let object: Value = serde_json::from_str(line).unwrap();
            // A duplicate key would parse but shrink the object: count them in the text.
            assert_eq!(
                line.matches("\"tag\":").count(),
                1,
                "one tag per line: {line}"
            );
            assert_eq!(line.matches("\"time\":").count(), 1, "{line}");
            assert!(object["time"].as_str().unwrap().ends_with('Z'));
        }
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["tag"], "inner \"quoted\"");
        assert_eq!(first["caller"], "a@b");
        assert_eq!(first["n"], 1.5);
        assert_eq!(first["message"], "done");
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["tag"], "event");
    }

    #[test]
    fn the_pipe_writes_every_line_in_order_by_the_time_its_guard_drops() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let pipe = LogPipe::start(Sink::Memory(out.clone()));
        let guard = LogGuard(Some(pipe.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pipe = pipe.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        let _ = (&pipe).write_all(format!("{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order, none lost");
            next[t] += 1;
        }
        assert_eq!(next, [5000; 4]);
        // After the guard, lines are written directly.
        let _ = (&pipe).write_all(b"late\n");
        assert!(out.lock().unwrap().ends_with(b"late\n"));
    }

    #[test]
    fn without_project_the_trace_id_stays_plain() {
        let lines = capture(None, || {
            let span = tracing::info_span!("r", trace_id = "4bf92f3577b34da6a3ce929d0e0e4736");
            let _g = span.enter();
            tracing::info!("hi");
        });
        assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(lines[0].get("logging.googleapis.com/trace").is_none());
        assert_eq!(lines[0]["severity"], "INFO");
    }

    /// The trace context of a request with these `traceparent` and `X-Cloud-Trace-Context`.
    fn trace_of(traceparent: Option<&str>, cloud_trace: Option<&str>) -> Option<TraceContext> {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = traceparent {
            headers.insert("traceparent", v.parse().unwrap());
        }
        if let Some(v) = cloud_trace {
            headers.insert("x-cloud-trace-context", v.parse().unwrap());
        }
        TraceContext::from_headers(&headers)
    }

    #[test]
    fn traceparent_is_preferred_and_validated() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ct = "11111111111111111111111111111111/123;o=0";
        let t = trace_of(Some(tp), Some(ct)).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        let bad = "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01";
        let t = trace_of(Some(bad), Some(ct)).unwrap();
        assert_eq!(t.trace_id, "11111111111111111111111111111111");
        assert!(!t.sampled);
    }

    #[test]
    fn traceparent_fields_are_read_at_their_places() {
        let ok = |v: &str| trace_of(Some(v), None);
        let t = ok(" 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00 ").unwrap();
        assert_eq!(
            t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
            "lower-cased"
        );
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(!t.sampled);
        // The sampled flag is the lowest bit of the flags byte.
        let flags = |f: &str| {
            ok(&format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{f}"
            ))
            .map(|t| t.sampled)
        };
        assert_eq!(flags("03"), Some(true));
        assert_eq!(flags("02"), Some(false));
        assert_eq!(flags("1f"), Some(true));
        assert_eq!(flags("0g"), None);
        // A later version may add fields after another dash; version 00 accepts them the same.
        let base = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(ok(&format!("{base}-future")).is_some());
        assert!(ok(&format!("{base}x")).is_none());
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert!(ok(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cloud_trace_span_is_converted_from_decimal() {
        let t = trace_of(None, Some("105445aa7843bc8bf206b12000100000/1;o=1")).unwrap();
        assert_eq!(t.span_id.as_deref(), Some("0000000000000001"));
        assert!(t.sampled);
        let t = trace_of(
            None,
            Some("105445aa7843bc8bf206b12000100000/18446744073709551615"),
        )
        .unwrap();
        assert_eq!(t.span_id.as_deref(), Some("ffffffffffffffff"));
        assert!(trace_of(None, Some("nope/1")).is_none());
    }
}
