//! Test harness: a recording origin, the real `authgate` binary on free ports, and a raw
//! HTTP/1.1 client that sends exactly the bytes a test writes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    /// Every value of a header (name compared case-insensitively).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }
}

/// A real HTTP origin that records every request it receives and answers 200 with a short
/// body. `/slow` answers after one second, `/slow3` after three; `/plant-cookies` tries to set the gateway's
/// cookies beside one of its own.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// What `/plant-cookies` answers with: the origin's own cookie first, then the gateway's.
pub const PLANTED_COOKIES: [&str; 5] = [
    "theme=dark; Path=/",
    "authgate=planted; Path=/; HttpOnly",
    "__Host-authgate=planted; Path=/; Secure",
    "authgate-login-0123456789ab=planted; Path=/",
    "=authgate=nameless; Path=/",
];

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let record = record.clone();
                        async move {
                            let method = req.method().to_string();
                            let target = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(n, v)| {
                                    (
                                        n.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            let slow = req.uri().path().ends_with("/slow");
                            let slower = req.uri().path().ends_with("/slow3");
                            let plant = req.uri().path().ends_with("/plant-cookies");
                            let body_len = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().len())
                                .unwrap_or(0);
                            record.lock().unwrap().push(Seen {
                                method,
                                target: target.clone(),
                                headers,
                                body_len,
                            });
                            if slow {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            if slower {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let mut resp = Response::new(Full::new(Bytes::from(format!(
                                "origin saw {target}"
                            ))));
                            if plant {
                                for cookie in PLANTED_COOKIES {
                                    resp.headers_mut()
                                        .append("set-cookie", cookie.parse().unwrap());
                                }
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Origin { addr, seen }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The one request received so far (panics otherwise).
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "origin saw {seen:#?}");
        seen[0].clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A port nothing listens on right now, and never handed out before in this test process
/// (the kernel picks `:0` ports at random, so two tests could otherwise be given the same one
/// and talk to each other's gateway).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The real gateway binary, running with a test configuration.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Starts `authgate run` with `apps_yaml` (and any other top-level keys) appended to a
    /// header that sets the listener and admin ports. Waits until `/readyz` says ready.
    pub async fn start(yaml: &str) -> Gateway {
        Gateway::start_at(free_port(), yaml).await
    }

    /// Like [`Gateway::start`], on a port chosen by the caller.
    pub async fn start_at(port: u16, yaml: &str) -> Gateway {
        let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
        Gateway::start_with(&listen, SocketAddr::from(([127, 0, 0, 1], port)), yaml).await
    }

    /// Starts the gateway with the caller's own `listen` block; `addr` is the listener tests
    /// talk to by default.
    pub async fn start_with(listen: &str, addr: SocketAddr, yaml: &str) -> Gateway {
        Gateway::start_full(listen, addr, "", yaml).await
    }

    /// Like [`Gateway::start_with`], with more keys in the `admin` block (`, key: value`).
    pub async fn start_full(
        listen: &str,
        addr: SocketAddr,
        admin_extra: &str,
        yaml: &str,
    ) -> Gateway {
        Gateway::launch(listen, addr, admin_extra, yaml, None).await
    }

    /// Like [`Gateway::start`], with its log (at `info`) written to a file, not a terminal.
    pub async fn start_logged(yaml: &str) -> (Gateway, PathBuf) {
        let port = free_port();
        let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
        let log = std::env::temp_dir().join(format!("authgate-test-{port}.log"));
        let gw = Gateway::launch(
            &listen,
            SocketAddr::from(([127, 0, 0, 1], port)),
            "",
            yaml,
            Some(&log),
        )
        .await;
        (gw, log)
    }

    async fn launch(
        listen: &str,
        addr: SocketAddr,
        admin_extra: &str,
        yaml: &str,
        log: Option<&std::path::Path>,
    ) -> Gateway {
        let admin_port = free_port();
        let dir = tempfile::tempdir().unwrap();
        // Each gateway keeps its own data (API apps, domains, signing keys) unless the test
        // names a directory: the default is the working directory's `data`.
        let data_dir = if admin_extra.contains("data_dir") {
            String::new()
        } else {
            format!(", data_dir: '{}'", dir.path().join("data").display())
        };
        let config = format!(
            "{listen}\n\
             admin: {{listen: '127.0.0.1:{admin_port}'{data_dir}{admin_extra}}}\n\
             server: {{threads: 1, drain_timeout: 2s}}\n{yaml}"
        );
        let config_path = dir.path().join("authgate.yaml");
        std::fs::write(&config_path, config).unwrap();
        let (level, stderr) = match log {
            Some(path) => ("info", Stdio::from(std::fs::File::create(path).unwrap())),
            None => ("warn", Stdio::inherit()),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["run", "-c"])
            .arg(&config_path)
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let gw = Gateway {
            addr,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            child,
            _dir: dir,
            config_path,
        };
        gw.wait_ready().await;
        // Readiness probes only the plain listeners when there are some (a bare connection to
        // a TLS listener is a failed handshake in the log): wait for the others here.
        for address in listen
            .split("address: '")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
            .filter_map(|a| a.parse::<SocketAddr>().ok())
        {
            let deadline = Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(address).await.is_err() {
                assert!(Instant::now() < deadline, "{address} never accepted");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        gw
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = get(self.admin, "/readyz", "admin").await {
                if resp.status == 200 || listeners_accept(&resp.body) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the gateway's `/metrics` says now.
    pub async fn metrics(&self) -> String {
        get(self.admin, "/metrics", "admin").await.unwrap().body
    }

    /// The gateway's readiness report.
    pub async fn readiness(&self) -> (u16, serde_json::Value) {
        let resp = get(self.admin, "/readyz", "admin").await.unwrap();
        (resp.status, serde_json::from_str(&resp.body).unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, within: Duration) -> Option<bool> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a readiness report says every traffic listener accepts connections: tests start
/// gateways whose providers or JWKS are down on purpose, and those never become ready.
fn listeners_accept(report: &str) -> bool {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(report) else {
        return false;
    };
    report["status"] != "draining"
        && report["checks"].as_array().is_some_and(|checks| {
            checks
                .iter()
                .filter(|c| c["kind"] == "listener")
                .all(|c| c["ok"] == true)
        })
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes and reads everything until the server closes the connection; returns
/// every response in the stream (pipelined answers included).
pub async fn raw_all(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<Resp>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::Error::other("no close within 10s")),
    }
    let mut out = Vec::new();
    let mut rest = &buf[..];
    while !rest.is_empty() {
        let (resp, used) = parse_response(rest)?;
        out.push(resp);
        rest = &rest[used..];
    }
    Ok(out)
}

/// Sends one raw request (which should carry `Connection: close`) and parses the answer.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut all = raw_all(addr, bytes).await.unwrap();
    assert!(
        !all.is_empty(),
        "no response to {:?}",
        String::from_utf8_lossy(bytes)
    );
    all.remove(0)
}

/// `GET target` with `Host: host`, connection closed after.
pub async fn get(addr: SocketAddr, target: &str, host: &str) -> std::io::Result<Resp> {
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut all = raw_all(addr, req.as_bytes()).await?;
    if all.is_empty() {
        return Err(std::io::Error::other("empty reply"));
    }
    Ok(all.remove(0))
}

fn parse_response(buf: &[u8]) -> std::io::Result<(Resp, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            return Err(std::io::Error::other(format!(
                "bad response: {:?}",
                String::from_utf8_lossy(buf)
            )))
        }
    };
    let status = parsed.code.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let rest = &buf[head_len..];
    let (body, used) = if let Some(len) = find("content-length") {
        let len: usize = len.trim().parse().unwrap_or(0).min(rest.len());
        (rest[..len].to_vec(), len)
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)
    } else {
        (rest.to_vec(), rest.len())
    };
    Ok((
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        head_len + used,
    ))
}

fn dechunk(mut buf: &[u8]) -> (Vec<u8>, usize) {
    let total = buf.len();
    let mut out = Vec::new();
    while let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&buf[..line_end])
                .unwrap_or("0")
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        buf = &buf[line_end + 2..];
        if size == 0 {
            buf = &buf[buf.len().min(2)..];
            break;
        }
        let take = size.min(buf.len());
        out.extend_from_slice(&buf[..take]);
        buf = &buf[(take + 2).min(buf.len())..];
    }
    (out, total - buf.len())
}

/// Sends SIGHUP to a gateway process (a reload).
pub fn sighup(pid: u32) {
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// `authgate check -c path`: whether it passed, and what it printed on stderr.
pub fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "-c"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `authgate demo` on free loopback ports: the process, its gateway port (the app's host is
/// `localhost`) and its identity provider's port. Returns once the gateway answers.
pub async fn start_demo() -> (std::process::Child, u16, u16) {
    let (listen, admin, origin, idp) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--origin",
            &format!("127.0.0.1:{origin}"),
            "--idp",
            &format!("127.0.0.1:{idp}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gw = SocketAddr::from(([127, 0, 0, 1], listen));
    for _ in 0..200 {
        if get(gw, "/", "localhost").await.is_ok() {
            return (child, listen, idp);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the demo did not start");
}
