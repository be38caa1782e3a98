//! The `authgate` command: run the gateway, check a configuration, or start the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use authgate::config;
use authgate::demo::{self, DemoAddresses};

/// mimalloc: the proxy path allocates and frees many small buffers per request, and glibc's
/// allocator spent about a quarter of the gateway's instructions on them (callgrind,
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives memory that connections and caches have freed back to the operating system while the
/// gateway is idle. mimalloc returns freed memory (purges) a short delay after it is freed, but
/// only when some thread next calls into the allocator: after a crowd of clients leaves an idle
/// gateway, their memory would stay resident until traffic resumed. Purging is process-wide, so
/// one thread asking every few seconds is enough; when nothing waits to be purged the call is a
/// clock read and a comparison.
mod idle_trim {
    use std::time::Duration;

    const EVERY: Duration = Duration::from_secs(2);

    pub fn start() {
        let spawned = std::thread::Builder::new()
            .name("authgate-trim".into())
            .spawn(|| {
                // The allocator keeps per-thread state that is set up on a thread's first
                // allocation; collecting is a no-op on a thread that never allocated.
                let warm = std::hint::black_box(Box::new(0u64));
                drop(warm);
                loop {
                    std::thread::sleep(EVERY);
                    // SAFETY: mi_collect takes no pointers and only touches the allocator's own
                    // state, which it guards; it is safe to call from any thread at any time.
                    unsafe { libmimalloc_sys::mi_collect(false) };
                }
            });
        if let Err(e) = spawned {
            eprintln!("authgate: idle memory trimming is off: cannot start its thread: {e}");
        }
    }
}

#[derive(Parser)]
#[command(
    name = "authgate",
    version,
    about = "Self-hosted authentication gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "config/authgate.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print every problem with its field path.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "config/authgate.yaml")]
        config: PathBuf,
    },
    /// Print the configuration file's JSON Schema (for editors; also docs/authgate.schema.json).
    Schema,
    /// Ask a running gateway whether it is ready (exit 0) or not (exit 1), for container
    /// health checks. Asks the health listener, else the admin listener, of the configuration.
    Health {
        /// Configuration file of the running gateway.
        #[arg(short, long, default_value = "config/authgate.yaml")]
        config: PathBuf,
        /// Ask whether the process is alive (`/healthz`) instead of ready (`/readyz`).
        #[arg(long)]
        live: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Run the gateway with a built-in echo origin and demo routes, on loopback only.
    Demo {
        /// Gateway address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address (health, readiness, metrics).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Address of the built-in echo origin.
        #[arg(long, default_value = "127.0.0.1:8081")]
        origin: SocketAddr,
        /// Address of the built-in development identity provider.
        #[arg(long, default_value = "127.0.0.1:8082")]
        idp: SocketAddr,
    },
}

/// Prints each problem once, compiler style: `FILE:LINE: field: message`.
fn report(file: Option<&std::path::Path>, problems: &config::Problems) {
    for p in &problems.0 {
        match (file, p.line) {
            (Some(file), Some(line)) => {
                eprintln!("{}:{line}: {}: {}", file.display(), p.field, p.message)
            }
            (Some(file), None) => eprintln!("{}: {}: {}", file.display(), p.field, p.message),
            (None, _) => eprintln!("{}: {}", p.field, p.message),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        idle_trim::start();
    }
    match cli.command {
        Command::Check { config: path } => match config::load(&path) {
            Ok(gw) => {
                for w in &gw.warnings.0 {
                    match w.line {
                        Some(line) => eprintln!(
                            "{}:{line}: warning: {}: {}",
                            path.display(),
                            w.field,
                            w.message
                        ),
                        None => {
                            eprintln!("{}: warning: {}: {}", path.display(), w.field, w.message)
                        }
                    }
                }
                let apps = gw.hosts.apps().len();
                println!("{}: ok ({apps} app(s))", path.display());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                report(Some(&path), &problems);
                eprintln!("{}: {} problem(s)", path.display(), problems.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Schema => {
            print!("{}", config::json_schema());
            ExitCode::SUCCESS
        }
        Command::Health {
            config: path,
            live,
            timeout,
        } => {
            let addr = match authgate::health_probe::address(&path) {
                Ok(addr) => addr,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let outcome =
                authgate::health_probe::probe(addr, live, std::time::Duration::from_secs(timeout));
            println!("{}", outcome.summary);
            if outcome.healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Run { config: path } => {
            authgate::server::claim_reload_signal();
            let gw = match config::load(&path) {
                Ok(gw) => gw,
                Err(problems) => {
                    report(Some(&path), &problems);
                    return ExitCode::FAILURE;
                }
            };
            authgate::logging::init(&gw.log);
            for w in &gw.warnings.0 {
                tracing::warn!(field = %w.field, line = w.line, "{}", w.message);
            }
            serve(gw, Some(path))
        }
        Command::Demo {
            listen,
            admin,
            origin,
            idp,
        } => {
            let addrs = DemoAddresses {
                listen,
                admin,
                origin,
                idp,
            };
            let gw = match demo::config(addrs) {
                Ok(gw) => gw,
                Err(problems) => {
                    report(None, &problems);
                    return ExitCode::FAILURE;
                }
            };
            authgate::logging::init(&gw.log);
            if let Err(e) = demo::spawn_helpers(addrs) {
                eprintln!(
                    "cannot start the demo origin ({origin}) or identity provider ({idp}): {e}"
                );
                return ExitCode::FAILURE;
            }
            eprintln!(
                "authgate demo: open http://localhost:{port}/ then http://localhost:{port}/account to sign in \
                 (echo origin {origin}, development identity provider http://{idp}, metrics http://{admin}/metrics)",
                port = listen.port()
            );
            serve(gw, None)
        }
    }
}

fn serve(gw: config::Gateway, path: Option<PathBuf>) -> ExitCode {
    match authgate::server::run(gw, path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
