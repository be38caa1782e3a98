//! Authorisation: does a verified identity meet a route's requirements?

use crate::jwt::{ClaimSet, Shape};
use crate::route::rules::Requirements;

/// Which requirement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unmet {
    /// A required scope is missing (`scope` string or `scp` array).
    #[error("insufficient scope")]
    Scope,
    /// None of the required groups (`groups` or `roles` claim).
    #[error("not in a required group")]
    Group,
    /// A claim is missing or has none of the required values.
    #[error("claim requirement not met")]
    Claim,
}

/// Checks every requirement; all must hold.
pub fn check(require: &Requirements, claims: &(impl ClaimSet + ?Sized)) -> Result<(), Unmet> {
    if !require.scopes.is_empty() {
        let granted = scopes(claims);
        if !require.scopes.iter().all(|s| granted.contains(s)) {
            return Err(Unmet::Scope);
        }
    }
    if !require.groups.is_empty() {
        let member = ["groups", "roles"]
            .iter()
            .any(|claim| any_text(claims, claim, |g| require.groups.iter().any(|r| r == g)));
        if !member {
            return Err(Unmet::Group);
        }
    }
    for (claim, allowed) in &require.claims {
        if !any_text(claims, claim, |v| allowed.iter().any(|a| a == v)) {
            return Err(Unmet::Claim);
        }
    }
    Ok(())
}

/// Whether any of a claim's values (a string, number or bool, or such an array element)
/// passes `test`.
fn any_text(claims: &(impl ClaimSet + ?Sized), name: &str, test: impl Fn(&str) -> bool) -> bool {
    let mut found = false;
    claims.claim_texts(name, &mut |t| found = found || test(t));
    found
}

/// Granted scopes: the space-separated `scope` string and the `scp` array.
fn scopes(claims: &(impl ClaimSet + ?Sized)) -> Vec<String> {
    let mut scope = Vec::new();
    let shape = claims.claim_texts("scope", &mut |t| {
        scope.extend(t.split_ascii_whitespace().map(str::to_string))
    });
    if shape != Some(Shape::Scalar) {
        scope.clear();
    }
    let mut scp = Vec::new();
    if claims.claim_texts("scp", &mut |t| scp.push(t.to_string())) == Some(Shape::List) {
        scope.append(&mut scp);
    }
    scope
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Claims;

    fn claims(v: serde_json::Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    fn req(scopes: &[&str], groups: &[&str], claims: &[(&str, &[&str])]) -> Requirements {
        Requirements {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn scopes_from_either_claim() {
        let r = req(&["read", "write"], &[], &[]);
        assert!(check(
            &r,
            &claims(serde_json::json!({"scope": "read write admin"}))
        )
        .is_ok());
        assert!(check(&r, &claims(serde_json::json!({"scp": ["read", "write"]}))).is_ok());
        assert_eq!(
            check(&r, &claims(serde_json::json!({"scope": "read"}))),
            Err(Unmet::Scope)
        );
        assert_eq!(check(&r, &claims(serde_json::json!({}))), Err(Unmet::Scope));
    }

    #[test]
    fn any_group_and_exact_claim_values() {
        let r = req(&[], &["admins", "ops"], &[("email_verified", &["true"])]);
        let ok = claims(serde_json::json!({"roles": ["ops"], "email_verified": true}));
        assert!(check(&r, &ok).is_ok());
        let no_group = claims(serde_json::json!({"groups": "users", "email_verified": true}));
        assert_eq!(check(&r, &no_group), Err(Unmet::Group));
        let unverified = claims(serde_json::json!({"groups": ["admins"], "email_verified": false}));
        assert_eq!(check(&r, &unverified), Err(Unmet::Claim));
    }
}
