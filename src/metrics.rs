//! Prometheus metrics, served on the admin listener at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Renders more metric families at scrape time, from state the metrics do not own (sessions
/// held, key ages, custom-domain states).
pub type Source = Box<dyn Fn(&mut String) + Send + Sync>;

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_seconds: HistogramVec,
    connections_refused: IntCounter,
    in_flight: IntGauge,
    sign_ins: IntCounterVec,
    sign_outs: IntCounterVec,
    backchannel_logouts: IntCounterVec,
    refreshes: IntCounterVec,
    store_seconds: HistogramVec,
    store_errors: IntCounterVec,
    sources: std::sync::Mutex<Vec<Source>>,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("constant metric definition")
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
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "The running build (always 1)."),
            &["version"],
        )
        .expect("constant metric definition");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let sign_ins = counter_vec(
            "sign_ins_total",
            "Sign-in callbacks by app and outcome (signed_in, or why not).",
            &["app", "outcome"],
        );
        let sign_outs = counter_vec("sign_outs_total", "Sign-outs by app.", &["app"]);
        let backchannel_logouts = counter_vec(
            "backchannel_logouts_total",
            "Back-channel logout requests from providers by app and outcome: ended, refused \
             (bad request or logout token), store_unavailable.",
            &["app", "outcome"],
        );
        let refreshes = counter_vec(
            "session_refreshes_total",
            "Token refreshes by app and outcome: ok, kept (provider briefly away; the session \
             goes on), ended (refused; the session ends).",
            &["app", "outcome"],
        );
        let store_seconds = HistogramVec::new(
            HistogramOpts::new(
                "store_duration_seconds",
                "Round trips to the shared store (Redis) by operation.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["op"],
        )
        .expect("constant metric definition");
        let store_errors = counter_vec(
            "store_errors_total",
            "Shared-store (Redis) operations that failed (unreachable, timed out, refused).",
            &["op"],
        );
        registry
            .register(Box::new(store_seconds.clone()))
            .expect("registered once");
        for family in [
            &sign_ins,
            &sign_outs,
            &backchannel_logouts,
            &refreshes,
            &store_errors,
        ] {
            registry
                .register(Box::new(family.clone()))
                .expect("registered once");
        }
        registry
            .register(Box::new(build_info))
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
            sign_ins,
            sign_outs,
            backchannel_logouts,
            refreshes,
            store_seconds,
            store_errors,
            sources: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Adds families rendered at every scrape.
    pub fn add_source(&self, source: Source) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.push(source);
        }
    }

    /// Counts a sign-in callback's outcome.
    pub fn sign_in(&self, app: &str, outcome: &str) {
        self.sign_ins.with_label_values(&[app, outcome]).inc();
    }

    /// Counts a sign-out.
    pub fn sign_out(&self, app: &str) {
        self.sign_outs.with_label_values(&[app]).inc();
    }

    /// Counts one back-channel logout request and its outcome.
    pub fn backchannel_logout(&self, app: &str, outcome: &str) {
        self.backchannel_logouts
            .with_label_values(&[app, outcome])
            .inc();
    }

    /// Records one shared-store operation: how long it took and whether it failed.
    pub fn store_call(&self, op: &str, seconds: f64, failed: bool) {
        self.store_seconds.with_label_values(&[op]).observe(seconds);
        if failed {
            self.store_errors.with_label_values(&[op]).inc();
        }
    }

    /// Counts a token refresh's outcome.
    pub fn refresh(&self, app: &str, outcome: &str) {
        self.refreshes.with_label_values(&[app, outcome]).inc();
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
        let mut text = String::from_utf8(out).unwrap_or_default();
        if let Ok(sources) = self.sources.lock() {
            for source in sources.iter() {
                source(&mut text);
            }
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
