//! OpenID Connect sign-in: providers ([`provider`]), the browser flow and the gateway's own
//! endpoints ([`flow`]), logout tokens from the provider ([`logout_token`]), and return-path
//! validation ([`return_to`]).

pub mod flow;
pub mod logout_token;
pub mod provider;
pub mod refresh;
pub mod return_to;
pub mod token_response;

pub use provider::{Provider, ProviderError};
