//! DNS lookups that verify a custom domain: its ownership TXT record and its CNAME to the
//! gateway's public name, asked of the configured name servers with `hickory-resolver`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{txt_name, CustomDomain};

/// DNS lookups for verification.
pub struct Dns {
    resolver: hickory_resolver::TokioResolver,
}

impl Dns {
    /// A resolver asking `nameservers` (UDP), or the system's when empty.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Dns, String> {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
        use hickory_resolver::name_server::TokioConnectionProvider;
        use hickory_resolver::proto::xfer::Protocol;
        let builder = if nameservers.is_empty() {
            hickory_resolver::TokioResolver::builder_tokio().map_err(|e| e.to_string())?
        } else {
            let mut config = ResolverConfig::new();
            for ns in nameservers {
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
            }
            hickory_resolver::TokioResolver::builder_with_config(
                config,
                TokioConnectionProvider::default(),
            )
        };
        let mut opts = ResolverOpts::default();
        // Records are being published while the verifier polls: never cache an answer.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 1;
        Ok(Dns {
            resolver: builder.with_options(opts).build(),
        })
    }

    /// Whether the domain's TXT record holds its token and it points at `public_name`.
    pub async fn check(&self, entry: &CustomDomain, public_name: &str) -> Result<(), String> {
        let token = entry
            .dns_records
            .iter()
            .find(|r| r.kind == "TXT")
            .map(|r| r.value.clone())
            .unwrap_or_default();
        let txt = self
            .resolver
            .txt_lookup(format!("{}.", txt_name(&entry.domain)))
            .await
            .map_err(|_| format!("no TXT record at {} yet", txt_name(&entry.domain)))?;
        let found = txt.iter().any(|record| {
            record
                .txt_data()
                .iter()
                .any(|part| part.as_ref() == token.as_bytes())
        });
        if !found {
            return Err(format!(
                "the TXT record at {} does not hold the token",
                txt_name(&entry.domain)
            ));
        }
        let cname = self
            .resolver
            .lookup(
                format!("{}.", entry.domain),
                hickory_resolver::proto::rr::RecordType::CNAME,
            )
            .await
            .map_err(|_| format!("no CNAME record at {} yet", entry.domain))?;
        let target = format!(
            "{}.",
            public_name.trim_end_matches('.').to_ascii_lowercase()
        );
        let points = cname
            .iter()
            .filter_map(|r| r.as_cname())
            .any(|name| name.to_ascii().to_ascii_lowercase() == target);
        if !points {
            return Err(format!("{} does not point at {public_name}", entry.domain));
        }
        Ok(())
    }
}
