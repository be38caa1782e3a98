//! The demo in a real browser: headless Chromium (Debian's), driven by playwright-core
//! (`tests/browser/journey.mjs`), signs in as a user who is not an admin, meets the 403 page,
//! signs out from it and lands on the signed-out page. Screenshots of each page are kept in
//! `target/browser-artifacts/`.

use std::process::Command;

use crate::common::start_demo;

#[tokio::test]
async fn a_person_signs_in_meets_the_403_page_and_signs_out_in_chromium() {
    let (mut demo, listen, _) = start_demo().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let artifacts = format!("{root}/target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let journey = tokio::task::spawn_blocking({
        let artifacts = artifacts.clone();
        move || {
            Command::new("node")
                .arg(format!("{root}/tests/browser/journey.mjs"))
                .arg(format!("http://localhost:{listen}"))
                .arg(&artifacts)
                .output()
                .expect("node runs (scripts/test installs it and tests/browser's packages)")
        }
    })
    .await
    .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&journey.stdout),
        String::from_utf8_lossy(&journey.stderr)
    );
    assert!(journey.status.success(), "{said}");
    for shot in [
        "1-provider-sign-in.png",
        "2-access-denied.png",
        "3-signed-out.png",
    ] {
        let bytes = std::fs::read(format!("{artifacts}/{shot}")).unwrap_or_default();
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"),
            "{shot} missing or empty:\n{said}"
        );
    }
}
