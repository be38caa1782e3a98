//! What a refusal page says: a heading and a sentence per kind of refusal, and what the route
//! needs, in words a visitor can act on. The JSON answers keep their short codes.

use crate::authz::Unmet;
use crate::respond::Reject;
use crate::route::rules::Requirements;

/// The heading and the sentence for `reject`.
pub fn describe(reject: &Reject) -> (&'static str, String) {
    match reject {
        Reject::UnknownHost => ("Not found", "No site is served at this address.".into()),
        Reject::BadHost => (
            "Bad request",
            "The address of this request is missing or unclear.".into(),
        ),
        Reject::BadPath(why) => (
            "Bad request",
            format!("This address cannot be served: {why}."),
        ),
        Reject::Misdirected => (
            "Wrong connection",
            "This connection was opened for another site. Reload the page.".into(),
        ),
        Reject::BadFraming(_) => (
            "Bad request",
            "The request could not be read in only one way, so it was not served.".into(),
        ),
        Reject::HeadersTooLarge => (
            "Request too large",
            "The request's headers are too large — often too many or too large cookies. \
             Clearing this site's cookies may help."
                .into(),
        ),
        Reject::BodyTooLarge => (
            "Request too large",
            "What was sent is larger than this site accepts.".into(),
        ),
        Reject::BadRequest(why) => ("Bad request", format!("This request was refused: {why}.")),
        Reject::Unauthenticated => (
            "Sign-in required",
            "This page is only for signed-in users.".into(),
        ),
        Reject::MalformedCredentials | Reject::InvalidToken(_) | Reject::UnsafeIdentity => (
            "Not signed in",
            "The credentials sent with this request were not accepted.".into(),
        ),
        Reject::Insufficient(_) => (
            "Access denied",
            "You are signed in, but your account does not have access to this page.".into(),
        ),
        Reject::Denied => ("Access denied", "This page is not available.".into()),
        Reject::SessionStoreUnavailable => (
            "Sign-in unavailable",
            "Sessions cannot be checked right now. Please try again in a moment.".into(),
        ),
        Reject::AssertionUnavailable => (
            "Temporarily unavailable",
            "Your identity cannot be passed to this site right now. Please try again in a \
             moment."
                .into(),
        ),
    }
}

/// What the route needs, when the refusal is about the identity falling short of it.
pub fn needs(reject: &Reject, require: &Requirements) -> Vec<String> {
    let Reject::Insufficient(unmet) = reject else {
        return Vec::new();
    };
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("“{n}”"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut needs = Vec::new();
    if !require.groups.is_empty() && *unmet == Unmet::Group {
        needs.push(format!("members of {}", list(&require.groups)));
    }
    if !require.scopes.is_empty() && *unmet == Unmet::Scope {
        needs.push(format!(
            "access granted the scopes {}",
            list(&require.scopes)
        ));
    }
    if *unmet == Unmet::Claim {
        // Which values are accepted is not said: they can describe who else has access.
        for (claim, _) in &require.claims {
            needs.push(format!("accounts whose “{claim}” has a particular value"));
        }
    }
    needs
}

/// The heading and sentence for a request the origin could not answer.
pub fn upstream(status: u16) -> (&'static str, &'static str) {
    match status {
        504 => (
            "The app did not answer in time",
            "The app behind this page took too long to answer. Please try again.",
        ),
        502 | 503 => (
            "The app is not answering",
            "The app behind this page could not be reached. Please try again shortly.",
        ),
        413 => (
            "Request too large",
            "What was sent is larger than this site accepts.",
        ),
        400..=499 => ("Bad request", "This request could not be served."),
        _ => (
            "Something went wrong",
            "This request could not be completed. Please try again.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_needs_are_named_for_what_fell_short_but_claim_values_are_not() {
        let require = Requirements {
            scopes: vec!["orders:write".into()],
            groups: vec!["admins".into(), "ops".into()],
            claims: vec![("department".into(), vec!["secret-team".into()])],
        };
        assert_eq!(
            needs(&Reject::Insufficient(Unmet::Group), &require),
            ["members of “admins”, “ops”"]
        );
        let claims = needs(&Reject::Insufficient(Unmet::Claim), &require).join(" ");
        assert!(claims.contains("department") && !claims.contains("secret-team"));
        assert!(needs(&Reject::Denied, &require).is_empty());
    }
}
