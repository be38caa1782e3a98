//! The behaviour every store backend must have, written once and run against each of them:
//! the memory store in unit tests, a real `redis-server` (standalone, Sentinel, Cluster) in
//! the integration tests. Keys are placed under `namespace`, so runs can share a server.
//!
//! The suite panics on the first behaviour that differs, naming it.

use std::time::Duration;

use super::{Changes, Documents, Leases, Records, SingleUse};

/// Runs every check against `store`.
pub async fn run<S>(store: &S, namespace: &str)
where
    S: Records + SingleUse + Leases + Changes + Documents,
{
    documents(store, namespace).await;
    records(store, namespace).await;
    indexes(store, namespace).await;
    single_use(store, namespace).await;
    leases(store, namespace).await;
    changes(store, namespace).await;
}

/// Documents: none at first, created only where none is, replaced only from the value read,
/// any bytes; of writers racing from the same value exactly one wins.
pub async fn documents(store: &impl Documents, ns: &str) {
    let key = format!("{ns}:document");
    assert_eq!(
        store.read(&key).await.unwrap(),
        None,
        "no document at first"
    );
    assert!(
        !store.replace(&key, Some(b"v0"), b"v1").await.unwrap(),
        "a document that is not there is not replaced"
    );
    assert!(store.replace(&key, None, b"v1").await.unwrap(), "created");
    assert!(
        !store.replace(&key, None, b"v2").await.unwrap(),
        "created only once"
    );
    assert!(
        !store.replace(&key, Some(b"v0"), b"v2").await.unwrap(),
        "not replaced from a stale value"
    );
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0]).collect();
    assert!(store.replace(&key, Some(b"v1"), &bytes).await.unwrap());
    assert_eq!(
        store.read(&key).await.unwrap(),
        Some(bytes.clone()),
        "bytes round-trip"
    );
    let wins = futures_util::future::join_all((0..8u8).map(|i| {
        let bytes = &bytes;
        let key = &key;
        async move { store.replace(key, Some(bytes), &[i]).await.unwrap() }
    }))
    .await;
    assert_eq!(
        wins.iter().filter(|w| **w).count(),
        1,
        "one of the writers racing from the same value wins"
    );
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Values: round trip (any bytes), replace, expiry, touch, read-and-touch, delete.
pub async fn records(store: &impl Records, ns: &str) {
    let key = format!("{ns}:record");
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "a missing key reads as none"
    );
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    store
        .put(&key, &bytes, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        Some(bytes),
        "bytes round-trip exactly"
    );
    store
        .put(&key, b"second", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"second"[..]),
        "put replaces"
    );
    let big = vec![7u8; 64 * 1024];
    store
        .put(&key, &big, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(big), "64 KiB values");

    let short = format!("{ns}:short");
    store
        .put(&short, b"x", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(store.get(&short).await.unwrap().is_some());
    sleep_ms(600).await;
    assert_eq!(store.get(&short).await.unwrap(), None, "a value expires");
    assert!(
        !store.touch(&short, Duration::from_secs(5)).await.unwrap(),
        "an expired key cannot be touched"
    );

    let slid = format!("{ns}:slid");
    store
        .put(&slid, b"y", Duration::from_millis(400))
        .await
        .unwrap();
    sleep_ms(200).await;
    assert!(
        store.touch(&slid, Duration::from_secs(5)).await.unwrap(),
        "touch finds the key"
    );
    sleep_ms(400).await;
    assert!(
        store.get(&slid).await.unwrap().is_some(),
        "touch extends the life"
    );

    assert_eq!(
        store
            .get_touch(&slid, Duration::from_millis(400))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"y"[..]),
        "get_touch reads the value"
    );
    sleep_ms(600).await;
    assert_eq!(
        store.get(&slid).await.unwrap(),
        None,
        "get_touch set the life (shortened here)"
    );
    assert_eq!(
        store
            .get_touch(&slid, Duration::from_secs(5))
            .await
            .unwrap(),
        None,
        "an expired key is not read"
    );
    store
        .put(&slid, b"y", Duration::from_millis(400))
        .await
        .unwrap();
    assert!(store.delete(&slid).await.unwrap(), "delete finds the key");
    assert!(
        !store.delete(&slid).await.unwrap(),
        "a second delete finds none"
    );
    assert_eq!(store.get(&slid).await.unwrap(), None);
    assert!(store.delete(&key).await.unwrap());
}

/// Sets: add, members, remove, expiry.
pub async fn indexes(store: &impl Records, ns: &str) {
    let index = format!("{ns}:index");
    assert!(
        store.index_members(&index).await.unwrap().is_empty(),
        "a missing set is empty"
    );
    for member in ["b", "a", "b"] {
        store
            .index_add(&index, member, Duration::from_secs(30))
            .await
            .unwrap();
    }
    assert_eq!(
        store.index_members(&index).await.unwrap(),
        ["a", "b"],
        "members, once each, sorted"
    );
    store.index_remove(&index, "a").await.unwrap();
    store.index_remove(&index, "never-added").await.unwrap();
    assert_eq!(store.index_members(&index).await.unwrap(), ["b"]);
    store.index_remove(&index, "b").await.unwrap();
    assert!(store.index_members(&index).await.unwrap().is_empty());

    let short = format!("{ns}:index-short");
    store
        .index_add(&short, "m", Duration::from_millis(300))
        .await
        .unwrap();
    sleep_ms(600).await;
    assert!(
        store.index_members(&short).await.unwrap().is_empty(),
        "a set expires"
    );
}

/// Single use: the first claim wins, concurrent claims included; again after expiry.
pub async fn single_use(store: &impl SingleUse, ns: &str) {
    let key = format!("{ns}:state");
    assert!(
        store.claim(&key, Duration::from_secs(30)).await.unwrap(),
        "the first claim wins"
    );
    assert!(
        !store.claim(&key, Duration::from_secs(30)).await.unwrap(),
        "a second claim loses"
    );
    assert!(
        store
            .claim(&format!("{ns}:other"), Duration::from_secs(30))
            .await
            .unwrap(),
        "keys are independent"
    );

    let raced = format!("{ns}:raced");
    let claims = (0..20).map(|_| store.claim(&raced, Duration::from_secs(30)));
    let won = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "of 20 concurrent claims exactly one wins");

    store.release_claim(&key).await.unwrap();
    assert!(
        store.claim(&key, Duration::from_secs(30)).await.unwrap(),
        "a released claim can be made again"
    );
    store
        .release_claim(&format!("{ns}:never-claimed"))
        .await
        .unwrap();

    let short = format!("{ns}:state-short");
    assert!(store
        .claim(&short, Duration::from_millis(300))
        .await
        .unwrap());
    sleep_ms(600).await;
    assert!(
        store.claim(&short, Duration::from_secs(30)).await.unwrap(),
        "a claim expires"
    );
}

fn forged_on(name: &str) -> super::Lease {
    super::Lease {
        name: name.to_string(),
        token: "not-the-token".into(),
    }
}

/// Leases: exclusive, released only by their holder, taken over after expiry (fencing).
pub async fn leases(store: &impl Leases, ns: &str) {
    let name = format!("{ns}:lease");
    let held = store
        .acquire(&name, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free lease is granted");
    assert_eq!(
        store.acquire(&name, Duration::from_secs(30)).await.unwrap(),
        None,
        "a held lease is not granted twice"
    );
    let forged = forged_on(&name);
    assert!(
        !store.release(&forged).await.unwrap(),
        "only the holder releases"
    );
    assert!(store.release(&held).await.unwrap(), "the holder releases");
    assert!(
        !store.release(&held).await.unwrap(),
        "a released lease is not released twice"
    );

    let raced = format!("{ns}:lease-raced");
    let tries = (0..10).map(|_| store.acquire(&raced, Duration::from_secs(30)));
    let granted = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(
        granted, 1,
        "of 10 concurrent acquisitions exactly one is granted"
    );

    let short = format!("{ns}:lease-short");
    let first = store
        .acquire(&short, Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    sleep_ms(200).await;
    assert!(
        store
            .renew(&first, Duration::from_millis(400))
            .await
            .unwrap(),
        "the holder extends its lease"
    );
    sleep_ms(200).await;
    assert_eq!(
        store
            .acquire(&short, Duration::from_secs(30))
            .await
            .unwrap(),
        None,
        "an extended lease outlives its first expiry"
    );
    assert!(
        !store
            .renew(&forged_on(&short), Duration::from_secs(30))
            .await
            .unwrap(),
        "only the holder extends"
    );
    sleep_ms(400).await;
    assert!(
        !store.renew(&first, Duration::from_secs(30)).await.unwrap(),
        "an expired lease is not extended"
    );
    let second = store
        .acquire(&short, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("an expired lease is granted again");
    assert_ne!(
        first.token, second.token,
        "each acquisition has its own token"
    );
    assert!(
        !store.release(&first).await.unwrap(),
        "the expired holder cannot release the new holder's lease"
    );
    assert!(store.release(&second).await.unwrap());
}

/// Changes: every subscriber gets every message, in order.
pub async fn changes(store: &impl Changes, ns: &str) {
    let channel = format!("{ns}:changes");
    let mut one = store.subscribe(&channel).await.unwrap();
    let mut two = store.subscribe(&channel).await.unwrap();
    // A subscription may take a moment to reach a remote server.
    sleep_ms(200).await;
    for message in ["first", "second", "third"] {
        store.publish(&channel, message).await.unwrap();
    }
    for receiver in [&mut one, &mut two] {
        for expected in ["first", "second", "third"] {
            let got = tokio::time::timeout(Duration::from_secs(2), receiver.recv())
                .await
                .unwrap_or_else(|_| panic!("`{expected}` not received within 2 s"))
                .unwrap();
            assert_eq!(
                got,
                super::Change::Message(expected.into()),
                "messages arrive in order"
            );
        }
    }
    // Other channels' messages are not delivered.
    store
        .publish(&format!("{ns}:elsewhere"), "x")
        .await
        .unwrap();
    sleep_ms(200).await;
    assert!(
        one.try_recv().is_err(),
        "a subscriber gets its channel's messages only"
    );
}
