//! The floor of the load harness (`benches/load/run.sh`): the least a pingora proxy can do per
//! request, built the way authgate is — the same pingora features and version, mimalloc, one
//! upstream attempt, no work stealing, the same worker count — and with none of authgate's
//! work: no host table, no rules, no sessions, no header hygiene. Every request goes to one
//! origin over a kept-alive connection.
//!
//! `bare_proxy LISTEN ORIGIN THREADS`, e.g. `bare_proxy 127.0.0.1:18202 127.0.0.1:18181 2`.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_proxy LISTEN ORIGIN THREADS";
    let listen = args.next().expect(usage);
    let origin: std::net::SocketAddr = args.next().expect(usage).parse().expect(usage);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).expect(usage);
    let mut conf = ServerConf {
        threads,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    conf.max_retries = 1;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let peer = HttpPeer::new(origin, false, String::new());
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Floor { peer });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
