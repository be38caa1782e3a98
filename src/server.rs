//! Assembles the pingora server: one proxy service per traffic listener, the admin listener,
//! configuration reload on SIGHUP, and shutdown on SIGTERM/SIGINT that drains in-flight
//! requests.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use tokio::signal::unix::{signal, SignalKind};

use crate::acme::Challenges;
use crate::admin::{AdminApi, AdminService};
use crate::admin_api::ApiContext;
use crate::config::{Gateway, ListenerRole};
use crate::domains::certificates::{Certificates, Vault};
use crate::domains::manager::DomainManager;
use crate::domains::DomainBook;
use crate::metrics::Metrics;
use crate::oidc::flow::SignIn;
use crate::proxy::watch::ConnectionWatch;
use crate::proxy::AuthGate;
use crate::readiness::Readiness;
use crate::registry::Registry;
use crate::session::memory::MemoryStore;
use crate::tls::{CertStore, SniRecorder};
use pingora::listeners::tls::TlsSettings;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The stored admin API apps could not be loaded.
    #[error("cannot load the admin API's apps: {0}")]
    Registry(String),
    /// The certificate directory could not be loaded.
    #[error("cannot load certificates: {0}")]
    Certificates(String),
    /// The shared session store could not be reached.
    #[error("cannot reach the session store (sessions.redis): {0}")]
    SessionStore(String),
    /// The shared control store could not be reached.
    #[error("cannot reach the control store (control.redis): {0}")]
    ControlStore(String),
    /// An app sends signed assertions and no signing key could be read or made.
    #[error("cannot read or make the signing keys (signing, admin.data_dir): {0}")]
    SigningKeys(String),
    /// The health listener's address could not be bound.
    #[error("cannot bind the health listener on {address}: {source}")]
    HealthBind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The admin listener's address could not be bound.
    #[error("cannot bind the admin listener on {address}: {source}")]
    AdminBind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// A traffic listener's address could not be bound.
    #[error("cannot bind the listener on {address}: {source}")]
    ListenerBind {
        /// The configured address.
        address: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// Binds each traffic listener's address once before the server starts, so an address that
/// is taken (or not this machine's) is a clear start-up error: pingora itself would log the
/// listener as bound, retry, and leave a process that serves nothing. The probe is released at
/// once for pingora to bind.
fn probe_listeners(listeners: &[crate::config::Listener]) -> Result<(), StartError> {
    for listener in listeners {
        std::net::TcpListener::bind(listener.address).map_err(|source| {
            StartError::ListenerBind {
                address: listener.address,
                source,
            }
        })?;
    }
    Ok(())
}

/// Takes over SIGHUP for the whole process at once, before the configuration is even read:
/// until then a SIGHUP's default action would end the process, and the reload service only
/// starts listening once the server runs. A SIGHUP that arrives in between is not lost work
/// (the configuration being loaded is the current one) and no longer kills anything.
pub fn claim_reload_signal() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        // Registering the handler replaces the default action for the rest of the process's
        // life; the stream itself is not needed.
        Ok(rt) => rt.block_on(async {
            if signal(SignalKind::hangup()).is_err() {
                eprintln!("cannot install the SIGHUP handler; a reload signal may end the process");
            }
        }),
        Err(e) => eprintln!("cannot install the SIGHUP handler ({e})"),
    }
}

/// Builds the server for `gateway` and runs it until a shutdown signal has drained it.
/// `config_path` is re-read on SIGHUP; a bad file is refused and the running snapshot kept.
pub fn run(gateway: Gateway, config_path: Option<PathBuf>) -> Result<(), StartError> {
    let mut conf = ServerConf {
        threads: gateway.server.threads,
        grace_period_seconds: Some(gateway.server.drain_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: gateway.server.upstream_keepalive_pool_size,
        // Each worker thread runs its own connections start to end. Measured against work
        // stealing on 2 threads: 30,500 vs 26,800 req/s on the public route, 39 vs 45 µs of
        // CPU per request (BENCHMARKS.md).
        work_stealing: false,
        ..ServerConf::default()
    };
    // One attempt per request: a failed origin connection is answered with 502 at once.
    conf.max_retries = 1;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    // Readiness connects to the listeners; a bare TCP connect to a TLS listener is a failed
    // handshake in the logs, so plain listeners are probed when there are any.
    let plain: Vec<_> = gateway
        .listeners
        .iter()
        .filter(|l| l.role != ListenerRole::Tls)
        .map(|l| l.address)
        .collect();
    let probe = if plain.is_empty() {
        gateway.listeners.iter().map(|l| l.address).collect()
    } else {
        plain
    };
    let admin_listen = gateway.admin.listen;
    let health_listen = gateway.admin.health_listen;
    let metrics_token = gateway.admin.metrics_token.clone();
    let api_token = gateway.admin.api_token.clone();
    let data_dir = gateway.admin.data_dir.clone();
    let listeners = gateway.listeners.clone();
    probe_listeners(&listeners)?;
    let redis = gateway.sessions.redis.clone();
    let (max_sessions, idle_timeout, near_cache_entries) = (
        gateway.sessions.max_sessions,
        gateway.sessions.idle_timeout,
        gateway.sessions.near_cache_entries,
    );
    let config = Arc::new(ArcSwap::from_pointee(gateway));
    // Sessions: in this process, or in Redis shared by every replica. Signing keys live
    // beside them: in Redis, or in a file under the data directory.
    let (store, memory, documents): (Arc<dyn crate::session::SessionStore>, _, _) = match redis {
        None => {
            let memory = Arc::new(MemoryStore::new(max_sessions, idle_timeout));
            let files: Arc<dyn crate::store::Documents> =
                Arc::new(crate::store::file::FileDocuments::new(&data_dir));
            (memory.clone(), Some(memory), (files, None))
        }
        Some(settings) => {
            let (sessions, backend) = shared_sessions(
                settings,
                config.clone(),
                near_cache_entries,
                metrics.clone(),
            )?;
            let documents: Arc<dyn crate::store::Documents> = backend.clone();
            let changes: Arc<dyn crate::store::Changes> = backend;
            (sessions, None, (documents, Some(changes)))
        }
    };
    let keys = Arc::new(crate::keys::SigningKeys::new(documents.0, documents.1));
    // Keys are read (and made, when an app wants assertions and there are none) before the
    // first request, so no authenticated request meets a gateway without its key.
    let read = store_runtime()?.block_on(keys.read_keys(&config.load()));
    if config.load().signing.wanted && keys.loaded().current.is_none() {
        let why = read.err().unwrap_or_else(|| "no key is current".into());
        return Err(StartError::SigningKeys(why));
    }
    let readiness = Arc::new(Readiness::new(probe, store.clone()));
    let sign_in = Arc::new(SignIn::new(store.clone(), metrics.clone()));
    let certs = match &config.load().certs_dir {
        Some(dir) => Some(Arc::new(
            CertStore::load(dir).map_err(StartError::Certificates)?,
        )),
        None => None,
    };
    // The control plane — the admin API's apps, custom domains and their certificates: files
    // under the data directory and the certificate directory, or Redis shared by replicas.
    let shared_control = match config.load().control.redis.clone() {
        None => None,
        Some(settings) => {
            let backend = store_runtime()?
                .block_on(crate::store::redis::RedisStore::connect(settings))
                .map_err(|e| StartError::ControlStore(e.to_string()))?;
            Some(Arc::new(backend.with_metrics(metrics.clone())))
        }
    };
    let control = || match shared_control.clone() {
        None => crate::registry::ControlStore {
            documents: Arc::new(crate::store::file::FileDocuments::new(&data_dir)),
            changes: None,
        },
        Some(backend) => crate::registry::ControlStore {
            documents: backend.clone(),
            changes: Some(backend),
        },
    };
    // Apps created through the admin API, and active custom domains, join the config file's
    // (when there is a file).
    let domains = match &config_path {
        Some(_) => {
            let store = control();
            Some(Arc::new(
                store_runtime()?
                    .block_on(DomainBook::open(store.documents, store.changes))
                    .map_err(StartError::Registry)?,
            ))
        }
        None => None,
    };
    crate::metrics_sources::register(&metrics, memory, config.clone(), domains.clone());
    let certificates = certs.as_ref().map(|serving| {
        let vault = match (&shared_control, &config.load().certs_dir) {
            (Some(backend), _) => Vault::Shared(backend.clone()),
            (None, Some(dir)) => Vault::Directory(dir.clone()),
            (None, None) => Vault::Directory(serving.dir().to_path_buf()),
        };
        Arc::new(Certificates::new(serving.clone(), vault))
    });
    let registry = match (&config_path, &domains) {
        (Some(path), Some(domains)) => Some(Arc::new(
            store_runtime()?
                .block_on(Registry::open(
                    path,
                    control(),
                    domains.clone(),
                    config.clone(),
                    certificates.clone(),
                ))
                .map_err(StartError::Registry)?,
        )),
        _ => None,
    };
    // HTTP-01 answers: shared with the other replicas when the control plane is.
    let challenges = Arc::new(match &shared_control {
        Some(backend) => Challenges::shared(backend.clone()),
        None => Challenges::default(),
    });
    let shared = crate::proxy::Shared {
        config: config.clone(),
        metrics: metrics.clone(),
        sign_in: sign_in.clone(),
        keys: keys.clone(),
        challenges: challenges.clone(),
    };
    let api = match (&registry, &domains, api_token) {
        (Some(registry), Some(domains), Some(token)) => Some(AdminApi {
            context: ApiContext {
                registry: registry.clone(),
                domains: domains.clone(),
                snapshot: config.clone(),
                sign_in: sign_in.clone(),
                keys: keys.clone(),
            },
            token,
        }),
        _ => None,
    };
    let admin = AdminService::bind(
        admin_listen,
        &shared,
        readiness.clone(),
        metrics_token,
        api,
        registry.clone(),
    )
    .map_err(|source| StartError::AdminBind {
        address: admin_listen,
        source,
    })?;
    let health = match health_listen {
        Some(address) => Some(
            admin
                .health_listener(address)
                .map_err(|source| StartError::HealthBind { address, source })?,
        ),
        None => None,
    };

    for (i, listener) in listeners.iter().enumerate() {
        let gate = AuthGate::new(shared.clone(), listener);
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, gate);
        let mut options = HttpServerOptions::default();
        options.h2c = listener.h2c;
        proxy.server_options = Some(options);
        // Each connection is watched: deadlines for idle and slow clients, a connection cap,
        // and pingora's own refusals answered, logged and counted like every other one.
        let mut service = pingora::services::listening::Service::new(
            format!("authgate proxy {i}"),
            ConnectionWatch::new(proxy, metrics.clone(), config.clone()),
        );
        let address = listener.address.to_string();
        match listener.role {
            ListenerRole::Tls => {
                let certs = certs.as_ref().ok_or_else(|| {
                    StartError::Certificates("no certificate directory is configured".into())
                })?;
                let mut settings = TlsSettings::with_callbacks(Box::new(SniRecorder))
                    .map_err(|e| StartError::Certificates(e.to_string()))?;
                settings.set_cert_resolver(certs.clone());
                settings.enable_h2();
                service.add_tls_with_settings(&address, None, settings);
            }
            _ => service.add_tcp(&address),
        }
        server.add_service(service);
        tracing::info!(address = %listener.address, role = ?listener.role, "traffic listener");
    }
    tracing::info!(address = %config.load().admin.listen, "admin listener");
    {
        let running = config.load();
        let mut apps: Vec<String> = running
            .hosts
            .apps()
            .iter()
            .map(|a| a.id.to_string())
            .collect();
        apps.sort_unstable();
        let providers: Vec<&str> = running.providers.iter().map(|p| &*p.id).collect();
        let listening: Vec<String> = running
            .listeners
            .iter()
            .map(|l| l.address.to_string())
            .collect();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = config_path.as_ref().map(|p| p.display().to_string()),
            listeners = %listening.join(" "),
            apps = %apps.join(" "),
            providers = %providers.join(" "),
            "authgate starting"
        );
    }
    server.add_service(background_service("authgate admin", admin));
    if let (Some(health), Some(address)) = (health, health_listen) {
        tracing::info!(%address, "health listener");
        server.add_service(background_service("authgate health", health));
    }
    server.add_service(background_service(
        "authgate jwks warm-up",
        JwksWarmup {
            config: config.clone(),
        },
    ));
    if let (Some(domains), Some(registry)) = (domains, &registry) {
        server.add_service(background_service(
            "authgate custom domains",
            DomainManager {
                book: domains,
                registry: registry.clone(),
                config: config.clone(),
                certificates,
                challenges,
                accounts: Arc::new(match &shared_control {
                    Some(backend) => crate::acme::AcmeAccounts::new(backend.clone(), true),
                    None => crate::acme::AcmeAccounts::new(
                        Arc::new(crate::store::file::FileDocuments::new(&data_dir)),
                        false,
                    ),
                }),
                leases: shared_control
                    .clone()
                    .map(|backend| backend as Arc<dyn crate::store::Leases>),
            },
        ));
    }
    if let (Some(registry), Some(_)) = (&registry, &shared_control) {
        server.add_service(background_service(
            "authgate control sync",
            ControlSync {
                registry: registry.clone(),
            },
        ));
    }
    if let Some(registry) = registry {
        server.add_service(background_service(
            "authgate reload",
            Reloader { registry, certs },
        ));
    }
    server.add_service(background_service(
        "authgate signing keys",
        KeyKeeper {
            keys: keys.clone(),
            config: config.clone(),
        },
    ));
    server.add_service(background_service(
        "authgate drain",
        Drain {
            metrics: metrics.clone(),
        },
    ));
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { readiness }),
    });
    Ok(())
}

/// The runtime the shared store's connections and subscriptions live on, for the whole
/// process (pingora's runtimes are made later, per service).
static STORE_RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();

/// Connects to Redis and starts the shared sessions; a store that cannot be reached at start
/// is a start-up error naming it.
fn shared_sessions(
    settings: crate::store::redis::RedisSettings,
    config: Arc<ArcSwap<Gateway>>,
    near_capacity: u64,
    metrics: Arc<Metrics>,
) -> Result<
    (
        Arc<crate::session::shared::SharedSessions>,
        Arc<crate::store::redis::RedisStore>,
    ),
    StartError,
> {
    tracing::info!(topology = ?settings.topology, "connecting to the session store");
    store_runtime()?
        .block_on(async {
            let backend = Arc::new(
                crate::store::redis::RedisStore::connect(settings)
                    .await?
                    .with_metrics(metrics),
            );
            let sessions = crate::session::shared::SharedSessions::start(
                backend.clone(),
                config,
                near_capacity,
            )
            .await?;
            Ok::<_, crate::store::StoreError>((sessions, backend))
        })
        .map_err(|e| StartError::SessionStore(e.to_string()))
}

/// The runtime of the shared store, made on first use.
fn store_runtime() -> Result<&'static tokio::runtime::Runtime, StartError> {
    match STORE_RUNTIME.get() {
        Some(runtime) => Ok(runtime),
        None => {
            let built = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("authgate-store")
                .enable_all()
                .build()
                .map_err(|e| StartError::SessionStore(e.to_string()))?;
            Ok(STORE_RUNTIME.get_or_init(|| built))
        }
    }
}

/// SIGTERM and SIGINT both drain gracefully; a second signal of either kind is not needed
/// because the drain is bounded by `server.drain_timeout`.
struct Signals {
    readiness: Arc<Readiness>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        self.readiness.start_draining();
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process as soon as a graceful shutdown has nothing left to wait for. pingora
/// itself waits the whole grace period (`server.drain_timeout`) whatever is in flight; this
/// watches the requests in flight (open WebSocket tunnels are told to go away when the
/// shutdown starts, and end) and exits when none is left. If some never finish, pingora's
/// grace period still ends the drain at `server.drain_timeout`.
struct Drain {
    metrics: Arc<Metrics>,
}

/// How often the drain looks at the requests in flight.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(20);

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.wait_for(|down| *down).await.is_err() {
            return;
        }
        let started = std::time::Instant::now();
        while self.metrics.in_flight() > 0 {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        tracing::info!(
            waited_ms = started.elapsed().as_millis() as u64,
            "drained: nothing in flight, exiting"
        );
        std::process::exit(0);
    }
}

/// Fetches every issuer's JWKS and discovers every OIDC provider once at start-up, so the
/// first request does not wait.
struct JwksWarmup {
    config: Arc<ArcSwap<Gateway>>,
}

#[async_trait]
impl BackgroundService for JwksWarmup {
    async fn start(&self, _shutdown: ShutdownWatch) {
        warm_up(self.config.load_full()).await;
    }
}

/// Resolves when `changes` delivers something — a message, or word that some were lost — so
/// the caller re-reads now. A closed feed is dropped and then never resolves, leaving the
/// caller's periodic re-read.
async fn next_change(changes: &mut Option<tokio::sync::broadcast::Receiver<crate::store::Change>>) {
    loop {
        let Some(receiver) = changes.as_mut() else {
            return std::future::pending().await;
        };
        match receiver.recv().await {
            Err(tokio::sync::broadcast::error::RecvError::Closed) => *changes = None,
            _ => return,
        }
    }
}

/// Longest wait between two re-reads of the shared apps (an announcement that went missing is
/// healed by then).
const CONTROL_RESYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies the admin API changes other replicas make: at once when they announce one, and by a
/// periodic re-read.
struct ControlSync {
    registry: Arc<Registry>,
}

#[async_trait]
impl BackgroundService for ControlSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut changes = self.registry.changes().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CONTROL_RESYNC_EVERY) => {}
                _ = next_change(&mut changes) => {}
                _ = shutdown.changed() => return,
            }
            match self.registry.resync().await {
                Ok(Some(next)) => {
                    tokio::spawn(warm_up(next));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the shared apps cannot be re-read; the running ones stay")
                }
            }
        }
    }
}

/// Keeps the signing keys fresh: reads them again every few seconds and when a key's status
/// is due to change, creating, rotating and dropping keys as `signing` says.
struct KeyKeeper {
    keys: Arc<crate::keys::SigningKeys>,
    config: Arc<ArcSwap<Gateway>>,
}

#[async_trait]
impl BackgroundService for KeyKeeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut changes = self.keys.changes().await;
        loop {
            let wait = self.keys.refresh(&self.config.load_full()).await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A request found no key (assertions were just turned on): read now.
                _ = self.keys.key_missing() => {}
                // Another replica changed the keys (or the feed lost messages): read now.
                _ = next_change(&mut changes) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn warm_up(gateway: Arc<Gateway>) {
    // Issuers and providers carried over from the previous snapshot are warm already.
    let fetches = gateway
        .verifier
        .issuers()
        .filter(|issuer| issuer.keys.key_count() == 0)
        .map(|issuer| issuer.keys.refresh());
    let discoveries = gateway
        .providers
        .iter()
        .filter(|p| !p.is_discovered())
        .map(|p| async move {
            // Failures are logged and retried on first use.
            let _ = p.discovered().await;
        });
    futures_util::future::join(
        futures_util::future::join_all(fetches),
        futures_util::future::join_all(discoveries),
    )
    .await;
}

/// Re-reads the certificate directory and the configuration file on SIGHUP and swaps each in
/// atomically. Listener and admin addresses are fixed for the process's life; a change to them
/// needs a restart.
struct Reloader {
    registry: Arc<Registry>,
    certs: Option<Arc<CertStore>>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot install the SIGHUP handler; reload disabled");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = shutdown.changed() => return,
            }
            if let Some(certs) = &self.certs {
                match certs.reload() {
                    Ok(count) => tracing::info!(certificates = count, "certificates reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "certificate reload refused; keeping the running ones")
                    }
                }
            }
            match self.registry.reload().await {
                Ok(next) => {
                    tokio::spawn(warm_up(next));
                    tracing::info!("configuration reloaded");
                }
                Err(problems) => {
                    for p in &problems.0 {
                        tracing::error!(field = %p.field, problem = %p.message, "reload refused; keeping the running configuration");
                    }
                }
            }
        }
    }
}
