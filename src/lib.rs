//! authgate: a self-hosted authentication gateway built on pingora.
//!
//! Put it in front of any HTTP app and that app gets route rules, sign-in, sessions,
//! JWT-checked APIs and trustworthy identity headers, without a line of its code changing.
//! The request path: [`proxy`] (pingora phases) → [`proxy::admission`] (host → app, path
//! normalisation, route rules) → [`respond`] (refusals) or the app's origin, with
//! [`proxy::headers`] deciding what the origin sees.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acme;
pub mod admin;
pub mod admin_api;
pub mod authn;
pub mod authz;
pub mod config;
pub mod demo;
pub mod domains;
pub mod health_probe;
pub mod jwt;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod metrics_sources;
pub mod oidc;
pub mod pages;
pub mod proxy;
pub mod readiness;
pub mod registry;
pub mod respond;
pub mod route;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
