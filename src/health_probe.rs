//! `authgate health`: asks a running gateway whether it is ready (or, with `--live`, alive),
//! for container health checks where no HTTP client is installed. The address comes from the
//! configuration file: the health listener when there is one, else the admin listener.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// What the probe found: the exit status it should give and a line to print.
pub struct Outcome {
    /// True when the gateway answered 200.
    pub healthy: bool,
    /// One line saying what was found.
    pub summary: String,
}

/// The address to ask: the health listener if configured, else the admin listener, with a
/// wildcard bind reached through loopback.
pub fn address(config: &Path) -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let file = crate::config::parse(&text).map_err(|problems| {
        problems
            .0
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let (field, written) = match &file.admin.health_listen {
        Some(health) => ("admin.health_listen", health.as_str()),
        None => ("admin.listen", file.admin.listen.as_str()),
    };
    let mut addr: SocketAddr = written
        .parse()
        .map_err(|_| format!("{field}: `{written}` is not an IP:port"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

/// Asks `addr` for `/readyz` (or `/healthz` when `live`), waiting at most `timeout`.
pub fn probe(addr: SocketAddr, live: bool, timeout: Duration) -> Outcome {
    let path = if live { "/healthz" } else { "/readyz" };
    let url = format!("http://{addr}{path}");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Outcome {
                healthy: false,
                summary: format!("cannot start the probe: {e}"),
            }
        }
    };
    runtime.block_on(async {
        let client = match reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome {
                    healthy: false,
                    summary: format!("cannot start the probe: {e}"),
                }
            }
        };
        let resp = match client.get(&url).send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Outcome {
                    healthy: false,
                    summary: format!("{url}: no answer ({e})"),
                }
            }
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Outcome {
            healthy: status == reqwest::StatusCode::OK,
            summary: describe(&url, status.as_u16(), &body),
        }
    })
}

/// `URL: STATUS` and, for a readiness report, each failing check.
fn describe(url: &str, status: u16, body: &str) -> String {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(body) else {
        return format!("{url}: {status} {}", body.trim());
    };
    let mut line = format!(
        "{url}: {status} {}",
        report["status"].as_str().unwrap_or("(no status)")
    );
    for check in report["checks"].as_array().into_iter().flatten() {
        if check["ok"] == false {
            line.push_str(&format!(
                "; {} {}: {}",
                check["kind"].as_str().unwrap_or("?"),
                check["name"].as_str().unwrap_or("?"),
                check["detail"].as_str().unwrap_or("")
            ));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_summarised_with_its_failing_checks() {
        let body = r#"{"ready":false,"status":"not ready","checks":[
            {"kind":"provider","name":"corp","ok":false,"detail":"unreachable"},
            {"kind":"listener","name":"127.0.0.1:8080","ok":true,"detail":"accepting"}]}"#;
        assert_eq!(
            describe("http://a/readyz", 503, body),
            "http://a/readyz: 503 not ready; provider corp: unreachable"
        );
        assert_eq!(
            describe("http://a/healthz", 200, "ok\n"),
            "http://a/healthz: 200 ok"
        );
    }

    #[test]
    fn the_health_listener_is_preferred_and_wildcards_become_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "admin: {listen: '0.0.0.0:9090'}\n").unwrap();
        assert_eq!(address(&path).unwrap(), "127.0.0.1:9090".parse().unwrap());
        std::fs::write(
            &path,
            "admin: {listen: '127.0.0.1:9090', health_listen: '[::]:9091'}\n",
        )
        .unwrap();
        assert_eq!(address(&path).unwrap(), "[::1]:9091".parse().unwrap());
        std::fs::write(&path, "admin: {listen: 'nine'}\n").unwrap();
        assert_eq!(
            address(&path).unwrap_err(),
            "admin.listen: `nine` is not an IP:port"
        );
    }
}
