//! The token endpoint's answer as authgate reads it: the OAuth 2.0 fields parsed by
//! `openidconnect`, the ID token kept as text. The crate would otherwise parse the ID token's
//! claims while reading the response, so a token without `sub` or `iat` failed as a broken
//! exchange (502) before the gateway's own ID-token checks, which every ID token goes through.

use std::time::Duration;

use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreTokenType,
};
use openidconnect::{
    AccessToken, EmptyAdditionalClaims, ExtraTokenFields, IdToken, OAuth2TokenResponse,
    RefreshToken, Scope, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

/// The ID token field of a token response, unparsed.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RawIdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for RawIdTokenField {}

/// A token response whose ID token is verified by authgate, not by the crate.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(transparent)]
pub struct RawTokenResponse(StandardTokenResponse<RawIdTokenField, CoreTokenType>);

impl RawTokenResponse {
    /// The ID token exactly as the provider sent it.
    pub fn raw_id_token(&self) -> Option<&str> {
        self.0.extra_fields().id_token.as_deref()
    }
}

impl OAuth2TokenResponse for RawTokenResponse {
    type TokenType = CoreTokenType;

    fn access_token(&self) -> &AccessToken {
        self.0.access_token()
    }

    fn token_type(&self) -> &CoreTokenType {
        self.0.token_type()
    }

    fn expires_in(&self) -> Option<Duration> {
        self.0.expires_in()
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.0.refresh_token()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.0.scopes()
    }
}

/// The crate's view of the ID token is never used: it is always `None`, and callers read
/// [`RawTokenResponse::raw_id_token`] and verify it with the gateway's own verifier.
impl
    openidconnect::TokenResponse<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for RawTokenResponse
{
    fn id_token(
        &self,
    ) -> Option<
        &IdToken<
            EmptyAdditionalClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
    > {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_token_the_crate_could_not_parse_is_kept_as_text() {
        // Payload `{"iss":"x"}`: no `sub`, no `iat`.
        let body = r#"{"access_token":"a","token_type":"Bearer","expires_in":60,
                       "id_token":"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln","refresh_token":"r"}"#;
        let parsed: RawTokenResponse = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed.raw_id_token(),
            Some("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
        );
        assert_eq!(parsed.expires_in(), Some(Duration::from_secs(60)));
        assert_eq!(parsed.refresh_token().unwrap().secret(), "r");
        let none: RawTokenResponse =
            serde_json::from_str(r#"{"access_token":"a","token_type":"bearer"}"#).unwrap();
        assert_eq!(none.raw_id_token(), None);
    }
}
