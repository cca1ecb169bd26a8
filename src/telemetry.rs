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
//! Nothing here logs request bodies, tokens or keys; callers must not pass them as fields either.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
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

/// Installs the global subscriber, writing to stdout. Fails if the filter does not parse or a
/// subscriber exists.
pub fn init(args: &LogArgs) -> Result<(), String> {
    init_with(args, std::io::stdout, std::io::stdout().is_terminal())
}

/// Like [`init`], writing to stderr: for commands whose stdout is their result.
pub fn init_stderr(args: &LogArgs) -> Result<(), String> {
    init_with(args, std::io::stderr, std::io::stderr().is_terminal())
}

fn init_with<W>(args: &LogArgs, make_writer: W, terminal: bool) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&args.log_filter)
        .map_err(|e| format!("RUST_LOG: `{}` is not a valid filter: {e}", args.log_filter))?;
    let format = args.log_format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
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

/// A `tracing` layer writing Cloud Logging JSON lines to `W`.
pub struct CloudLoggingLayer<W> {
    project_id: Option<String>,
    make_writer: W,
}

impl<W> CloudLoggingLayer<W> {
    /// A layer linking traces to `project_id` (if known) and writing to `make_writer`.
    pub fn new(project_id: Option<String>, make_writer: W) -> Self {
        CloudLoggingLayer {
            project_id: project_id.filter(|p| !p.is_empty()),
            make_writer,
        }
    }
}

/// The recorded fields of a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(error_chain(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
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
            let mut fields = Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
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
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("severity".into(), severity(meta.level()).into());
        line.insert("time".into(), jiff::Timestamp::now().to_string().into());

        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::from(""));
        line.extend(fields);
        line.insert("message".into(), message);
        line.insert("target".into(), meta.target().into());

        if let Some(Value::String(trace)) = line.get("trace_id").cloned()
            && let Some(project) = &self.project_id
        {
            line.remove("trace_id");
            line.insert(
                "logging.googleapis.com/trace".into(),
                format!("projects/{project}/traces/{trace}").into(),
            );
        }
        if let Some(span_id) = line.remove("span_id") {
            line.insert("logging.googleapis.com/spanId".into(), span_id);
        }
        if let Some(sampled) = line.remove("trace_sampled") {
            line.insert("logging.googleapis.com/trace_sampled".into(), sampled);
        }
        if *meta.level() <= Level::WARN {
            let mut loc = Map::new();
            if let Some(file) = meta.file() {
                loc.insert("file".into(), file.into());
            }
            if let Some(l) = meta.line() {
                loc.insert("line".into(), l.to_string().into());
            }
            loc.insert("function".into(), meta.target().into());
            line.insert("logging.googleapis.com/sourceLocation".into(), loc.into());
        }

        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        let _ = self.make_writer.make_writer().write_all(&bytes);
    }
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
    /// Reads `traceparent` (preferred) or `X-Cloud-Trace-Context` (`TRACE/SPAN;o=1`, SPAN decimal).
    pub fn from_headers(traceparent: Option<&str>, cloud_trace: Option<&str>) -> Option<Self> {
        traceparent
            .and_then(Self::from_traceparent)
            .or_else(|| cloud_trace.and_then(Self::from_cloud_trace))
    }

    fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id: trace.to_ascii_lowercase(),
            span_id: Some(span.to_ascii_lowercase()),
            sampled: flags & 1 == 1,
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

    #[test]
    fn traceparent_is_preferred_and_validated() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ct = "11111111111111111111111111111111/123;o=0";
        let t = TraceContext::from_headers(Some(tp), Some(ct)).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        let bad = "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01";
        let t = TraceContext::from_headers(Some(bad), Some(ct)).unwrap();
        assert_eq!(t.trace_id, "11111111111111111111111111111111");
        assert!(!t.sampled);
    }

    #[test]
    fn cloud_trace_span_is_converted_from_decimal() {
        let t = TraceContext::from_headers(None, Some("105445aa7843bc8bf206b12000100000/1;o=1"))
            .unwrap();
        assert_eq!(t.span_id.as_deref(), Some("0000000000000001"));
        assert!(t.sampled);
        let t = TraceContext::from_headers(
            None,
            Some("105445aa7843bc8bf206b12000100000/18446744073709551615"),
        )
        .unwrap();
        assert_eq!(t.span_id.as_deref(), Some("ffffffffffffffff"));
        assert!(TraceContext::from_headers(None, Some("nope/1")).is_none());
    }
}
