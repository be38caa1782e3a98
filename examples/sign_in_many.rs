//! Signs in many times through a gateway against `authgate demo`'s development identity
//! provider, so the load harness can read the gateway's memory with that many live sessions:
//! `sign_in_many GATEWAY_URL COUNT [CONCURRENCY]`, e.g.
//! `sign_in_many http://127.0.0.1:18187/session/x 100000 32`.
//!
//! Each sign-in is a real one: the gateway's redirect to the provider (with its login cookie),
//! the provider's approval of user `alice`, and the callback, where the gateway exchanges the
//! code, verifies the ID token and creates the session. Prints how many succeeded; exits
//! non-zero if any failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

async fn sign_in(client: &reqwest::Client, start: &str) -> Result<(), String> {
    let first = client
        .get(start)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let authorize = header(&first, LOCATION)?;
    let login_cookie = cookie_pair(header(&first, SET_COOKIE)?);
    let mut approve = url::Url::parse(&authorize).map_err(|e| e.to_string())?;
    approve.set_path("/approve");
    approve.query_pairs_mut().append_pair("user", "alice");
    let approved = client
        .get(approve)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let callback = header(&approved, LOCATION)?;
    let done = client
        .get(callback)
        .header(COOKIE, login_cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let signed_in = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("authgate=") && !c.starts_with("authgate=;"));
    if done.status() == 302 && signed_in {
        Ok(())
    } else {
        Err(format!("callback answered {}", done.status()))
    }
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Result<String, String> {
    resp.headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{} answered {} without {name}", resp.url(), resp.status()))
}

fn cookie_pair(set_cookie: String) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let start = args
        .next()
        .expect("usage: sign_in_many GATEWAY_URL COUNT [CONCURRENCY]");
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(32);
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("an HTTP client");
    let failed = Arc::new(AtomicUsize::new(0));
    stream::iter(0..count)
        .for_each_concurrent(concurrency, |_| {
            let (client, start, failed) = (&client, &start, failed.clone());
            async move {
                if let Err(e) = sign_in(client, start).await {
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("sign-in failed: {e}");
                    }
                }
            }
        })
        .await;
    let failed = failed.load(Ordering::Relaxed);
    println!("{} sign-ins succeeded, {failed} failed", count - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
