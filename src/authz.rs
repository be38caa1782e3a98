//! Authorisation: does a verified identity meet a route's requirements?

use serde_json::Value;

use crate::jwt::ClaimSet;
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
        if !require.scopes.iter().all(|s| granted.contains(&s.as_str())) {
            return Err(Unmet::Scope);
        }
    }
    if !require.groups.is_empty() {
        let member = ["groups", "roles"]
            .iter()
            .any(|claim| values(claims.claim(claim)).any(|g| require.groups.contains(&g)));
        if !member {
            return Err(Unmet::Group);
        }
    }
    for (claim, allowed) in &require.claims {
        let ok = values(claims.claim(claim)).any(|v| allowed.contains(&v));
        if !ok {
            return Err(Unmet::Claim);
        }
    }
    Ok(())
}

fn scopes(claims: &(impl ClaimSet + ?Sized)) -> Vec<&str> {
    let mut out: Vec<&str> = claims
        .claim("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_ascii_whitespace().collect())
        .unwrap_or_default();
    if let Some(Value::Array(scp)) = claims.claim("scp") {
        out.extend(scp.iter().filter_map(Value::as_str));
    }
    out
}

/// A claim's values as text: a string, a number or bool, or each such element of an array.
fn values(claim: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    let items: Box<dyn Iterator<Item = &Value>> = match claim {
        Some(Value::Array(items)) => Box::new(items.iter()),
        Some(other) => Box::new(std::iter::once(other)),
        None => Box::new(std::iter::empty()),
    };
    items.filter_map(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
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
