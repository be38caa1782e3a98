//! The sign-in callback and sign-out as an attacker would call them: repeated parameters, a
//! forged error answer, a replayed state, a sign-out from a sibling origin.

use crate::signin::{callback_url, form_action, setup};

/// `url` with one more query parameter appended.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.query_pairs_mut().append_pair(name, value);
    url.to_string()
}

/// `url` with `name=value` placed first in its query.
fn with_param_first(url: &str, name: &str, value: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    let mut out = url.clone();
    out.set_query(None);
    out.query_pairs_mut()
        .append_pair(name, value)
        .extend_pairs(url.query_pairs());
    out.to_string()
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn a_repeated_callback_parameter_is_refused_before_the_provider_is_called() {
    let s = setup("", "", "").await;
    s.idp.set(|k| k.advertise_iss = true);
    let mut b = s.browser();
    let callback = callback_url(&s, &mut b, "/private").await;
    let state = param(&callback, "state");
    let iss = param(&callback, "iss");
    for (name, value) in [
        ("code", "code-of-the-attacker"),
        ("state", state.as_str()),
        ("iss", iss.as_str()),
    ] {
        for doubled in [
            with_param_first(&callback, name, value),
            with_param(&callback, name, value),
        ] {
            let hop = b.get(&doubled).await;
            assert_eq!(hop.status, 400, "{doubled}");
            assert!(hop.body.contains("malformed"), "{}", hop.body);
            assert_eq!(s.idp.token_calls(), 0, "{doubled}");
        }
    }
    // The state was not used up: the genuine answer still signs in.
    let ok = b.get(&callback).await;
    assert_eq!(ok.status, 302);
    assert_eq!(ok.location.as_deref(), Some("/private"));
    assert_eq!(s.idp.token_calls(), 1);
}

#[tokio::test]
async fn an_error_answer_for_an_unknown_state_shows_nothing_it_says() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let url = format!(
        "{}/_auth/callback?error=access_denied&error_description=Call+0800+EVIL+to+unlock&state=made-up",
        s.base
    );
    let hop = b.get(&url).await;
    assert_eq!(hop.status, 400);
    assert!(!hop.body.contains("EVIL"), "{}", hop.body);
    assert!(!hop.body.contains("access_denied"), "{}", hop.body);
    assert!(hop.body.contains("unknown or has expired"), "{}", hop.body);
}

#[tokio::test]
async fn an_error_answer_uses_up_the_state() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let callback = callback_url(&s, &mut b, "/private").await;
    let jar = b.jar.clone();
    let state = param(&callback, "state");
    let error = format!(
        "{}/_auth/callback?error=access_denied&error_description=No&state={state}",
        s.base
    );
    let hop = b.get(&error).await;
    assert_eq!(hop.status, 403, "{}", hop.body);
    assert!(hop.body.contains("access_denied: No"), "{}", hop.body);
    // The login cookie put back, with a code: the state is spent.
    b.jar = jar;
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert_eq!(s.idp.token_calls(), 0);
    assert!(!b.jar.contains_key("authgate"));
}

#[tokio::test]
async fn sign_out_needs_the_same_origin_or_the_confirmation_pages_token() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    let logout = format!("{}/_auth/logout", s.base);
    let me = format!("{}/_auth/me", s.base);
    let sibling = format!("http://sibling.app.test:{}", s.gw.addr.port());
    let cross: [&[(&str, &str)]; 5] = [
        &[],
        &[("origin", sibling.as_str())],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", sibling.as_str()),
        ],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", s.base.as_str()),
        ],
        &[("origin", "null")],
    ];
    for headers in cross {
        let hop = b.request("POST", &logout, headers).await;
        assert_eq!(hop.status, 200, "{headers:?}");
        assert!(hop.body.contains("method=\"post\""), "{}", hop.body);
        assert_eq!(
            b.get(&me).await.status,
            200,
            "still signed in after {headers:?}"
        );
    }
    // A made-up token does nothing either.
    let forged = b
        .request(
            "POST",
            &format!("{logout}?token=AAAAAAAAAAAAAAAAAAAAAA"),
            &[],
        )
        .await;
    assert_eq!(forged.status, 200);
    assert_eq!(b.get(&me).await.status, 200);
    // The browser's own same-origin POST signs out.
    let hop = b
        .request("POST", &logout, &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(hop.status, 302);
    assert_eq!(b.get(&me).await.status, 401);
    // So does the confirmation page's form, without any origin header.
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    let page = b.get(&logout).await;
    let action = form_action(&page.body);
    assert!(action.contains("token="), "{action}");
    let hop = b.request("POST", &format!("{}{action}", s.base), &[]).await;
    assert_eq!(hop.status, 302);
    assert_eq!(b.get(&me).await.status, 401);
}
