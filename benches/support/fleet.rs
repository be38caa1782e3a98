//! What a fleet leaves in the control store, shared by the control-plane benches.

use authgate::domains::{CustomDomain, DomainStatus};
use authgate::store::Documents;

/// One active custom domain for each of `apps` apps: `app-N` serves `www.customer-N.test`.
pub fn active_domains(apps: usize) -> Vec<CustomDomain> {
    (0..apps)
        .map(|i| CustomDomain {
            app: format!("app-{i}"),
            domain: format!("www.customer-{i}.test"),
            status: DomainStatus::Active,
            error_message: None,
            dns_records: Vec::new(),
            issued_at: Some(1_700_000_000),
            failures: 0,
            retry_at: None,
            history: Vec::new(),
        })
        .collect()
}

/// Stores `apps` (in the admin API's form) and `domains` as the control store's documents.
pub async fn store(
    documents: &dyn Documents,
    apps: &[serde_json::Value],
    domains: &[CustomDomain],
) {
    let stored = documents
        .replace("apps.json", None, &serde_json::to_vec(apps).unwrap())
        .await
        .unwrap();
    assert!(stored, "a fresh store");
    let stored = documents
        .replace("domains.json", None, &serde_json::to_vec(domains).unwrap())
        .await
        .unwrap();
    assert!(stored, "a fresh store");
}
