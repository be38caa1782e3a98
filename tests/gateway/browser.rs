//! A small cookie-keeping browser: follows redirects one hop at a time (so tests can stop
//! and tamper), keeps the cookies the gateway sets, and sends `Accept: text/html` like a
//! navigation.

use std::collections::BTreeMap;
use std::net::SocketAddr;

pub struct Hop {
    pub status: u16,
    pub url: String,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

pub struct Browser {
    client: reqwest::Client,
    /// Cookies of the gateway's hosts.
    pub jar: BTreeMap<String, String>,
    /// Cookies of every other host (the identity provider's), by host.
    others: BTreeMap<String, BTreeMap<String, String>>,
    gateway_host: String,
}

impl Browser {
    /// A browser for which `host` resolves to the gateway.
    pub fn new(host: &str, gateway: SocketAddr) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .resolve(host, gateway)
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
            others: BTreeMap::new(),
            gateway_host: host.to_string(),
        }
    }

    fn jar_for(&mut self, url: &str) -> &mut BTreeMap<String, String> {
        let host = url::Url::parse(url)
            .unwrap()
            .host_str()
            .unwrap_or("")
            .to_string();
        if host == self.gateway_host {
            &mut self.jar
        } else {
            self.others.entry(host).or_default()
        }
    }

    /// Submits a form (`application/x-www-form-urlencoded`).
    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Hop {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            "POST",
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body),
        )
        .await
    }

    /// One request; cookies are sent to and kept from the gateway's hosts only (the test
    /// provider on 127.0.0.1 sets none).
    pub async fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Hop {
        self.send(method, url, headers, None).await
    }

    async fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Hop {
        let mut req = self.client.request(method.parse().unwrap(), url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header("accept", "text/html,application/xhtml+xml");
        }
        let jar = self.jar_for(url);
        if !jar.is_empty() {
            let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", cookie.join("; "));
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let jar = self.jar_for(url);
        for set in &set_cookies {
            let first = set.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            let expired = set.contains("Max-Age=0") || set.contains("expires=Thu, 01 Jan 1970");
            if expired {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        let body = resp.text().await.unwrap_or_default();
        Hop {
            status,
            url: url.to_string(),
            location,
            set_cookies,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Hop {
        self.request("GET", url, &[]).await
    }

    /// Follows redirects from `url` until a non-redirect answer; returns every hop.
    pub async fn follow(&mut self, url: &str) -> Vec<Hop> {
        let mut hops = Vec::new();
        let mut next = url.to_string();
        for _ in 0..10 {
            let hop = self.get(&next).await;
            let location = hop.location.clone();
            let base = url::Url::parse(&hop.url).unwrap();
            hops.push(hop);
            match location {
                Some(loc) => next = base.join(&loc).unwrap().to_string(),
                None => return hops,
            }
        }
        panic!("redirect loop from {url}");
    }
}
