// A person's journey through the demo in a real browser (Debian's Chromium, headless): open a
// page for admins, sign in as Bob (not an admin) at the development provider, meet the 403
// page naming Bob and what the page needs, sign out from it, and land on the signed-out page.
// A screenshot of each page is saved. Exits non-zero, saying which step failed.
//
//   node journey.mjs http://localhost:PORT ARTIFACTS_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, artifacts] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error("usage: node journey.mjs BASE_URL ARTIFACTS_DIR");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

function expect(what, ok, detail) {
  if (!ok) {
    throw new Error(`${what}${detail ? `: ${detail}` : ""}`);
  }
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let page;
try {
  page = await (await browser.newContext({ viewport: { width: 900, height: 700 } })).newPage();

  // 1. An admins-only page sends the browser to the provider.
  await page.goto(`${base}/admins`);
  expect("the provider's sign-in page", page.url().includes("/authorize"), page.url());
  await page.screenshot({ path: join(artifacts, "1-provider-sign-in.png") });

  // 2. Bob signs in and comes back to the page he asked for: refused, and told why.
  await page.getByRole("button", { name: /Bob/ }).click();
  await page.waitForLoadState("load");
  expect("back on /admins", new URL(page.url()).pathname === "/admins", page.url());
  const refusal = await page.content();
  expect("a page, not JSON", refusal.includes("<h1>Access denied</h1>"), refusal.slice(0, 300));
  expect("it names the user", refusal.includes("bob@example.test"));
  expect("it names what the page needs", refusal.includes("admins"));
  const requestId = await page.locator("footer code").textContent();
  expect("it shows the request id", /^[0-9a-f]{32}$/.test(requestId ?? ""), requestId);
  await page.screenshot({ path: join(artifacts, "2-access-denied.png"), fullPage: true });

  // 3. "Sign out" from that page: signed out here and at the provider, and told so.
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL(/\/_auth\/signed-out/);
  const signedOut = await page.content();
  expect("the signed-out page", signedOut.includes("You have signed out"), signedOut.slice(0, 300));
  await page.screenshot({ path: join(artifacts, "3-signed-out.png"), fullPage: true });

  // 4. Signed out indeed: the admins page asks for a sign-in again.
  await page.goto(`${base}/admins`);
  expect("signed out for real", page.url().includes("/authorize"), page.url());
} catch (e) {
  if (page) {
    await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  }
  console.error(`FAILED: ${e.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
