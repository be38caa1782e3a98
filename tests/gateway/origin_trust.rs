//! What a legacy origin might trust and a client must not control: rewrite and method
//! override headers, other authentication products' identity headers, and paths spelt in
//! another case for an origin that ignores case.

use crate::common::{raw, Gateway, Origin, Resp};

async fn send(gw: &Gateway, host: &str, target: &str, headers: &[String]) -> Resp {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\n{}Accept: application/json\r\nConnection: close\r\n\r\n",
        headers.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    raw(gw.addr, req.as_bytes()).await
}

const REWRITES: [&str; 18] = [
    "X-Original-URL: /admin",
    "X-Rewrite-URL: /admin",
    "X-Forwarded-Uri: /admin",
    "X-Original-URI: /admin",
    "X-Forwarded-Path: /admin",
    "X-Forwarded-Prefix: /admin",
    "X-Envoy-Original-Path: /admin",
    "X-Original-Path: /admin",
    "X-Forwarded-Url: http://app.test/admin",
    "X_Original_URL: /admin",
    "X-Script-Name: /admin",
    "X-Original-Host: admin.internal",
    "X-Host: admin.internal",
    "X-Forwarded-Server: admin.internal",
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "X-Forwarded-Scheme: https",
];

const OTHER_PRODUCTS: [&str; 20] = [
    "X-Forwarded-Access-Token: forged",
    "GAP-Auth: admin@example.com",
    "X-Remote-User: admin",
    "X-WEBAUTH-USER: admin",
    "Remote-Groups: admins",
    "Remote-Email: admin@example.com",
    "Remote-Name: Admin",
    "X-Pomerium-Jwt-Assertion: forged",
    "X-Pomerium-Claim-Email: admin@example.com",
    "Cf-Access-Jwt-Assertion: forged",
    "Cf-Access-Authenticated-User-Email: admin@example.com",
    "X-Goog-Authenticated-User-Email: accounts.google.com:admin@example.com",
    "X-Goog-Iap-Jwt-Assertion: forged",
    "X-Amzn-Oidc-Identity: admin",
    "X-MS-Client-Principal-Name: admin",
    "X-Authentik-Username: admin",
    "OIDC_CLAIM_email: admin@example.com",
    "X-Vouch-User: admin",
    "X-Auth-Username: admin",
    "X-Authenticated-User: admin",
];

#[tokio::test]
async fn rewrite_and_foreign_identity_headers_never_reach_the_origin() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}, default_action: public}}\n",
        origin.url()
    ))
    .await;
    let forged: Vec<String> = REWRITES
        .iter()
        .chain(OTHER_PRODUCTS.iter())
        .map(|h| h.to_string())
        .collect();
    assert_eq!(send(&gw, "app.test", "/public", &forged).await.status, 200);
    let seen = origin.only();
    for written in REWRITES.iter().chain(OTHER_PRODUCTS.iter()) {
        let name = written.split(':').next().unwrap();
        assert!(
            seen.all(name).is_empty(),
            "{name} reached the origin: {seen:?}"
        );
    }
    for (name, value) in &seen.headers {
        assert!(
            !value.contains("admin") && !value.contains("forged") && value != "DELETE",
            "{name}: {value}"
        );
    }
    assert_eq!(seen.target, "/public");
}

#[tokio::test]
async fn the_rewrite_list_is_configurable() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "rewrite_headers: {{strip: [X-Original-URL]}}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}, default_action: public}}\n",
        origin.url()
    ))
    .await;
    let headers = [
        "X-Original-URL: /a".to_string(),
        "X-Forwarded-Prefix: /b".to_string(),
    ];
    assert_eq!(send(&gw, "app.test", "/", &headers).await.status, 200);
    let seen = origin.only();
    assert!(seen.all("x-original-url").is_empty());
    assert_eq!(
        seen.header("x-forwarded-prefix"),
        Some("/b"),
        "kept: not listed"
    );
}

#[tokio::test]
async fn rules_can_ignore_case_for_an_origin_that_does() {
    let origin = Origin::start().await;
    let apps = |host: &str, option: &str| {
        format!(
            "  - id: {host}
    host: {host}.test
    origin: {{url: '{}'}}
    default_action: public
    paths: {{{option}}}
    routes:
      - {{prefix: /admins, action: deny}}
      - {{exact: /billing, action: deny}}
      - {{glob: '/reports/*.pdf', action: deny}}
      - {{regex: '/exports/[0-9]+', action: deny}}
",
            origin.url()
        )
    };
    let gw = Gateway::start(&format!(
        "apps:\n{}{}",
        apps("iis", "case_insensitive: true"),
        apps("linux", "")
    ))
    .await;
    for target in [
        "/ADMINS",
        "/Admins/x",
        "/%41dmins",
        "/%61DMINS/y",
        "/BILLING",
        "/Reports/Q1.PDF",
        "/EXPORTS/12",
    ] {
        let resp = send(&gw, "iis.test", target, &[]).await;
        assert_eq!(resp.status, 403, "{target} on the case-insensitive app");
        let resp = send(&gw, "linux.test", target, &[]).await;
        assert_eq!(
            resp.status, 200,
            "{target} is another path on a case-sensitive app"
        );
    }
    assert_eq!(send(&gw, "iis.test", "/adminsx", &[]).await.status, 200);
    // The origin sees the path as the client wrote it.
    assert_eq!(send(&gw, "iis.test", "/Public", &[]).await.status, 200);
    assert!(origin.seen().iter().any(|s| s.target == "/Public"));
}
