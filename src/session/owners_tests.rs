//! Both session stores find and end sessions by user and by provider session alike, and claim
//! single-use keys once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::memory::MemoryStore;
use super::shared::SharedSessions;
use super::{new_id, Owner, Session, SessionId, SessionStore, UserRecord};

fn session(provider: &str, sub: &str, sid: Option<&str>) -> Arc<Session> {
    let mut claims = serde_json::json!({"sub": sub});
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    let user = UserRecord::new(claims.as_object().unwrap(), "a.e30.c", None).unwrap();
    Arc::new(Session::new(
        Arc::from("app"),
        Arc::from(provider),
        user,
        SystemTime::now() + Duration::from_secs(300),
        SystemTime::now() + Duration::from_secs(3600),
    ))
}

async fn shared(keys: &str) -> Arc<SharedSessions> {
    let config = crate::config::from_yaml(&format!(
        "sessions:\n  cookie_keys: [{keys}]\napps:\n  - {{id: app, host: app.test, origin: {{url: 'http://127.0.0.1:9/'}}}}\n"
    ))
    .unwrap();
    SharedSessions::start(
        Arc::new(crate::store::memory::MemoryStore::new()),
        Arc::new(ArcSwap::from_pointee(config)),
        100,
    )
    .await
    .unwrap()
}

fn ids(found: &[(SessionId, Arc<Session>)]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = found.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids
}

async fn finds_and_ends_by_owner(store: &dyn SessionStore) {
    let (a1, a2, a_other_idp, b) = (new_id(), new_id(), new_id(), new_id());
    store
        .put(a1, session("idp", "alice", Some("s1")))
        .await
        .unwrap();
    store
        .put(a2, session("idp", "alice", Some("s2")))
        .await
        .unwrap();
    store
        .put(a_other_idp, session("other", "alice", Some("s1")))
        .await
        .unwrap();
    store.put(b, session("idp", "bob", None)).await.unwrap();

    let alice = |provider| Owner::User {
        provider,
        sub: "alice",
    };
    let mut all = vec![a1, a2, a_other_idp];
    all.sort();
    assert_eq!(ids(&store.sessions_of(alice(None)).await.unwrap()), all);
    let mut at_idp = vec![a1, a2];
    at_idp.sort();
    assert_eq!(
        ids(&store.sessions_of(alice(Some("idp"))).await.unwrap()),
        at_idp
    );
    let s1 = |sub| Owner::ProviderSession {
        provider: "idp",
        sid: "s1",
        sub,
    };
    assert_eq!(ids(&store.sessions_of(s1(None)).await.unwrap()), vec![a1]);
    assert!(
        store.sessions_of(s1(Some("bob"))).await.unwrap().is_empty(),
        "a sid with another user's sub matches nothing"
    );

    // One provider session ends: only its session, not the same sid at another provider.
    assert_eq!(store.end_sessions_of(s1(Some("alice"))).await.unwrap(), 1);
    assert!(store.get(&a1).await.unwrap().is_none());
    assert!(store.get(&a_other_idp).await.unwrap().is_some());
    // The user's sessions at one provider end; the other provider's and other users' stay.
    assert_eq!(store.end_sessions_of(alice(Some("idp"))).await.unwrap(), 1);
    assert!(store.get(&a2).await.unwrap().is_none());
    assert!(store.get(&a_other_idp).await.unwrap().is_some());
    assert!(store.get(&b).await.unwrap().is_some());
    assert_eq!(store.end_sessions_of(alice(Some("idp"))).await.unwrap(), 0);

    let claims = store.single_use();
    assert!(claims
        .claim("state:x", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(!claims
        .claim("state:x", Duration::from_secs(5))
        .await
        .unwrap());
    claims.release_claim("state:x").await.unwrap();
    assert!(
        claims
            .claim("state:x", Duration::from_secs(5))
            .await
            .unwrap(),
        "a released claim can be made again"
    );
    assert!(claims
        .claim("state:y", Duration::from_millis(50))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        claims
            .claim("state:y", Duration::from_secs(5))
            .await
            .unwrap(),
        "a claim ends with its lifetime"
    );
}

#[tokio::test]
async fn the_memory_store_finds_and_ends_sessions_by_owner() {
    finds_and_ends_by_owner(&MemoryStore::new(100, Duration::from_secs(60))).await;
}

#[tokio::test]
async fn shared_sessions_find_and_end_sessions_by_owner() {
    finds_and_ends_by_owner(&*shared("'key-one-0123456789abcdef0123456789'").await).await;
}

#[tokio::test]
async fn shared_sessions_indexed_before_a_key_rotation_are_still_found() {
    let backend = Arc::new(crate::store::memory::MemoryStore::new());
    let config = |keys: &str| {
        Arc::new(ArcSwap::from_pointee(
            crate::config::from_yaml(&format!(
                "sessions:\n  cookie_keys: [{keys}]\napps:\n  - {{id: app, host: app.test, origin: {{url: 'http://127.0.0.1:9/'}}}}\n"
            ))
            .unwrap(),
        ))
    };
    let before = SharedSessions::start(
        backend.clone(),
        config("'old-key-0123456789abcdef0123456789'"),
        10,
    )
    .await
    .unwrap();
    let id = new_id();
    before
        .put(id, session("idp", "alice", Some("s1")))
        .await
        .unwrap();
    let after = SharedSessions::start(
        backend,
        config("'new-key-0123456789abcdef0123456789', 'old-key-0123456789abcdef0123456789'"),
        10,
    )
    .await
    .unwrap();
    let owner = Owner::User {
        provider: None,
        sub: "alice",
    };
    assert_eq!(ids(&after.sessions_of(owner).await.unwrap()), vec![id]);
    // An ended session is not listed (and its index entry is dropped on the way).
    after.remove(&id).await.unwrap();
    assert!(after.sessions_of(owner).await.unwrap().is_empty());
}

#[tokio::test]
async fn with_no_near_cache_every_lookup_reads_the_store() {
    use crate::store::Records;
    let backend = Arc::new(crate::store::memory::MemoryStore::new());
    let config = crate::config::from_yaml(
        "sessions:\n  cookie_keys: ['key-one-0123456789abcdef0123456789']\napps:\n  - {id: app, host: app.test, origin: {url: 'http://127.0.0.1:9/'}}\n",
    )
    .unwrap();
    let config = Arc::new(ArcSwap::from_pointee(config));
    let (near, none) = (
        SharedSessions::start(backend.clone(), config.clone(), 10)
            .await
            .unwrap(),
        SharedSessions::start(backend.clone(), config, 0)
            .await
            .unwrap(),
    );
    let id = new_id();
    near.put(id, session("idp", "alice", None)).await.unwrap();
    assert!(none.get(&id).await.unwrap().is_some());
    // Gone from the store behind both replicas' backs (no announcement): the replica without
    // a near cache sees it at once; the other serves its near copy until its re-check.
    let key = format!("session:{}", super::id_hex(&id));
    assert!(backend.delete(&key).await.unwrap());
    assert!(none.get(&id).await.unwrap().is_none());
    assert!(near.get(&id).await.unwrap().is_some());
}
