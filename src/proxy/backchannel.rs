//! The provider's back-channel logout request: a POST whose small form body the gateway reads
//! itself (it is never forwarded to the origin) before the sign-in flow decides on it.

use http::HeaderValue;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::AuthGate;
use crate::config::App;
use crate::oidc::flow::backchannel::MAX_BODY;
use crate::oidc::flow::Answer;

/// Longest wait for the whole body of a back-channel logout request.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl AuthGate {
    /// Reads the request's body (at most [`MAX_BODY`]) and answers it.
    pub(super) async fn backchannel_logout(
        &self,
        session: &mut Session,
        app: &App,
    ) -> Result<Answer> {
        let refuse = |status: u16, decision: &'static str, error: &str, text: &str| {
            Answer::json(
                status,
                decision,
                serde_json::json!({"error": error, "error_description": text}),
            )
        };
        if session.req_header().method != http::Method::POST {
            self.metrics.backchannel_logout(&app.id, "refused");
            return Ok(refuse(
                405,
                "method_not_allowed",
                "invalid_request",
                "back-channel logout takes a POST",
            )
            .header(http::header::ALLOW, HeaderValue::from_static("POST")));
        }
        // A provider sends a few kilobytes at once; a body that trickles is cut off.
        let read = tokio::time::timeout(BODY_TIMEOUT, async {
            let mut body = Vec::new();
            while let Some(chunk) = session.read_request_body().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, Box<Error>>(Some(body))
        })
        .await;
        let body = match read {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => {
                self.metrics.backchannel_logout(&app.id, "refused");
                return Ok(refuse(
                    413,
                    "too_large",
                    "invalid_request",
                    "the body is too large for a logout token",
                ));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                self.metrics.backchannel_logout(&app.id, "refused");
                return Ok(refuse(
                    408,
                    "request_timeout",
                    "invalid_request",
                    "the body did not arrive in time",
                ));
            }
        };
        let content_type = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let (answer, outcome) = self
            .sign_in
            .backchannel_logout(app, content_type, &body)
            .await;
        self.metrics.backchannel_logout(&app.id, outcome.label());
        Ok(answer)
    }
}
