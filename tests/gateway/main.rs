//! Integration tests: the real `authgate` binary on free ports, in front of a real HTTP
//! origin, driven over real sockets.

mod acme;
mod admin_api;
mod admin_sessions;
mod backchannel;
mod bearer_strictness;
mod browser;
mod callback;
mod certified;
mod chromium;
mod cli;
mod common;
mod cookies;
mod domain_lifecycle;
mod hosts;
mod hygiene;
mod idp;
mod jwks_faults;
mod jwt;
mod logs;
mod metrics;
mod operability;
mod origin_trust;
mod pages;
mod protocols;
mod readiness;
mod refresh;
mod reload_carry;
mod replicas;
mod routing;
mod signin;
mod slow_clients;
mod smuggling;
mod store_redis;
mod tls;
mod tokens;
