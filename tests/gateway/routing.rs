//! Host routing, rule precedence and path normalisation, asserted on what the origin received.

use crate::common::{get, Gateway, Origin};

fn shop(origin: &Origin) -> String {
    format!(
        "
apps:
  - id: shop
    host: shop.test
    origin: {{url: '{}/base'}}
    routes:
      - {{name: public, prefix: /public, action: public}}
      - {{name: admin, prefix: /admin, action: deny}}
      - {{name: admin-help, exact: /admin/help, action: public}}
      - {{name: assets, glob: '/assets/**/*.css', action: public}}
      - {{name: everything, prefix: /, methods: [GET], action: public}}
      - {{name: api, prefix: /api, action: jwt}}
",
        origin.url()
    )
}

#[tokio::test]
async fn hosts_match_ignoring_case_trailing_dot_and_port() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&shop(&origin)).await;
    for host in ["shop.test", "SHOP.Test", "shop.test.", "shop.test:8443"] {
        let resp = get(gw.addr, "/public/a", host).await.unwrap();
        assert_eq!(resp.status, 200, "{host}: {resp:?}");
    }
    assert_eq!(origin.seen().len(), 4);
    assert!(origin.seen().iter().all(|s| s.target == "/base/public/a"));

    let unknown = get(gw.addr, "/public/a", "other.test").await.unwrap();
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("unknown_host"));
    let malformed = get(gw.addr, "/public/a", "shop test").await.unwrap();
    assert_eq!(malformed.status, 400);
    assert_eq!(origin.seen().len(), 4, "nothing more was proxied");
}

#[tokio::test]
async fn most_specific_rule_wins() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&shop(&origin)).await;
    let cases = [
        ("/admin/users", 403),
        ("/admin/help", 200),
        ("/admin/helpers", 403),
        ("/assets/css/site.css", 200),
        ("/api/orders", 401),
        ("/anything", 200),
        ("/public", 200),
    ];
    for (path, status) in cases {
        let resp = get(gw.addr, path, "shop.test").await.unwrap();
        assert_eq!(resp.status, status, "{path}: {resp:?}");
    }
    let targets: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        [
            "/base/admin/help",
            "/base/assets/css/site.css",
            "/base/anything",
            "/base/public"
        ]
    );
}

#[tokio::test]
async fn a_route_that_names_methods_only_applies_to_them() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&shop(&origin)).await;
    let req = "POST /anything HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let resp = crate::common::raw(gw.addr, req.as_bytes()).await;
    assert_eq!(
        resp.status, 401,
        "POST falls to the default (session) action"
    );
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn normalised_paths_are_decided_and_forwarded_alike() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&shop(&origin)).await;
    // Walking out of a public prefix lands on the admin rule, never on the origin.
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2E/admin/x",
        "//admin",
        "/./admin",
    ] {
        let resp = get(gw.addr, path, "shop.test").await.unwrap();
        assert_eq!(resp.status, 403, "{path}: {resp:?}");
    }
    // Ambiguous encodings are refused outright.
    for path in [
        "/public%2F..%2Fadmin",
        "/admin;x=1",
        "/public/%00",
        "/public/%zz",
        "/public/%252e%252e/admin",
        "/public\\..\\admin",
    ] {
        let resp = get(gw.addr, path, "shop.test").await.unwrap();
        assert_eq!(resp.status, 400, "{path}: {resp:?}");
    }
    assert!(origin.seen().is_empty(), "{:?}", origin.seen());

    // A harmless path is forwarded in exactly the form it was decided on.
    let resp = get(gw.addr, "/public/./a//b/%7euser/../c?x=%2F", "shop.test")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(origin.only().target, "/base/public/a/b/c?x=%2F");
}

#[tokio::test]
async fn an_app_may_opt_in_to_encoded_slashes_and_path_parameters() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "
apps:
  - id: legacy
    host: legacy.test
    origin: {{url: '{}'}}
    default_action: public
    paths: {{allow_encoded_slash: true, allow_semicolon: true}}
    routes:
      - {{prefix: /admin, action: deny}}
",
        origin.url()
    ))
    .await;
    let resp = get(gw.addr, "/files/a%2fb;v=1", "legacy.test")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(origin.only().target, "/files/a%2Fb;v=1");
    let resp = get(gw.addr, "/admin;x=1", "legacy.test").await.unwrap();
    assert_eq!(resp.status, 403, "the parameter does not hide the segment");
}

#[tokio::test]
async fn an_app_without_rules_protects_every_path() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps: [{{id: locked, host: locked.test, origin: {{url: '{}'}}}}]",
        origin.url()
    ))
    .await;
    for path in ["/", "/index.html", "/api/x"] {
        assert_eq!(get(gw.addr, path, "locked.test").await.unwrap().status, 401);
    }
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn an_absolute_form_target_must_agree_with_host() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&shop(&origin)).await;
    let req =
        "GET http://evil.test/public/a HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";
    assert_eq!(
        crate::common::raw(gw.addr, req.as_bytes()).await.status,
        400
    );
    assert!(origin.seen().is_empty());
    let req = "GET http://shop.test/public/a?x=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";
    assert_eq!(
        crate::common::raw(gw.addr, req.as_bytes()).await.status,
        200
    );
    assert_eq!(
        origin.only().target,
        "/base/public/a?x=1",
        "forwarded in origin-form"
    );
}
