//! Structured logs with `tracing`: human-readable text or one JSON object per line. Access-log
//! events use the target `authgate::access`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFile, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(log: &LogFile) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second init (tests, `demo` after `check`) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
