//! Prometheus metrics, served on the admin listener at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_seconds: HistogramVec,
    connections_refused: IntCounter,
    in_flight: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("authgate".into()), None)
            .expect("a constant prefix is a valid metric prefix");
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Requests by app, route, decision and status.",
            ),
            &["app", "route", "decision", "status"],
        )
        .expect("constant metric definition");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "upstream_duration_seconds",
                "Time from sending a request to the origin to the end of its response.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["app"],
        )
        .expect("constant metric definition");
        let connections_refused = IntCounter::new(
            "connections_refused_total",
            "Client connections closed on arrival because the listener was at limits.max_connections.",
        )
        .expect("constant metric definition");
        let in_flight = IntGauge::new(
            "requests_in_flight",
            "Requests read and not yet finished (open WebSocket tunnels included).",
        )
        .expect("constant metric definition");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("registered once");
        registry
            .register(Box::new(connections_refused.clone()))
            .expect("registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(upstream_seconds.clone()))
            .expect("registered once");
        Metrics {
            registry,
            requests,
            upstream_seconds,
            connections_refused,
            in_flight,
        }
    }

    /// A request head has been read; a shutdown waits for it.
    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// A request is finished (answered, refused or cut off).
    pub fn request_ended(&self) {
        self.in_flight.dec();
    }

    /// Requests read and not yet finished.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a connection closed on arrival by the connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts one finished request.
    pub fn request(&self, app: &str, route: &str, decision: &str, status: u16) {
        let mut buf = itoa::Buffer::new();
        self.requests
            .with_label_values(&[app, route, decision, buf.format(status)])
            .inc();
    }

    /// Records one origin round trip.
    pub fn upstream(&self, app: &str, seconds: f64) {
        self.upstream_seconds
            .with_label_values(&[app])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
