//! Structured logs with `tracing`: human-readable text or one JSON object per line. Access-log
//! events use the target `authgate::access`.
//!
//! pingora logs a few things at ERROR that are neither errors nor the operator's to fix: a
//! client that hangs up in the middle of a request head, or an idle origin connection that
//! was still being checked when a request wanted it (a new connection is simply opened).
//! [`PingoraNoise`] says those at DEBUG instead, in words.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFile, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
/// pingora's own lines are kept to warnings unless the level names pingora: its start-up and
/// shutdown narration (a dozen lines each) says nothing the gateway's own lines do not.
pub fn init(log: &LogFile) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| log.level.clone());
    let filter = EnvFilter::try_new(with_quiet_pingora(&level))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_pingora("info")));
    // Colour codes only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(PingoraNoise);
    // A second init (tests, `demo` after `check`) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

fn with_quiet_pingora(level: &str) -> String {
    if level.contains("pingora") {
        level.to_string()
    } else {
        format!("{level},pingora_core=warn,pingora_proxy=warn,pingora=warn")
    }
}

/// Turns pingora's ERROR lines that are not errors into DEBUG lines that say what happened.
pub struct PingoraNoise;

/// What a pingora line is, if it is one of those said more quietly.
fn quieter(target: &str, message: &str) -> Option<&'static str> {
    if target.starts_with("pingora_core::connectors")
        && message == "failed to acquire reusable stream"
    {
        return Some("an idle origin connection was still being checked; a new one was opened");
    }
    if target.starts_with("pingora_proxy")
        && message.starts_with("Fail to proxy:")
        && message.contains("Downstream")
    {
        return Some("the client's connection failed before its request was read");
    }
    None
}

/// An event's message and, for a line that came through the `log` crate (as pingora's do),
/// the target it was logged under.
#[derive(Default)]
struct Message {
    text: String,
    log_target: Option<String>,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.text = format!("{value:?}"),
            "log.target" => self.log_target = Some(format!("{value:?}").trim_matches('"').into()),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.text = value.to_string(),
            "log.target" => self.log_target = Some(value.to_string()),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for PingoraNoise {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // pingora logs through the `log` crate: such events arrive under the target `log`,
        // with the real one in a field.
        if *meta.level() > Level::WARN || meta.target() != "log" {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let target = message.log_target.as_deref().unwrap_or_default();
        match quieter(target, &message.text) {
            Some(what) => {
                tracing::debug!(target: "authgate::pingora", detail = %message.text, "{what}");
                false
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_noise_is_quieted() {
        assert!(quieter(
            "pingora_core::connectors",
            "failed to acquire reusable stream"
        )
        .is_some());
        assert!(quieter(
            "pingora_proxy",
            "Fail to proxy: Downstream ConnectionClosed context: while reading request headers"
        )
        .is_some());
        assert!(quieter("pingora_proxy", "Fail to proxy: Upstream ConnectRefused").is_none());
        assert!(quieter("pingora_core::connectors", "TLS handshake failed").is_none());
    }
}
