// The approver's page in headless Chromium (Debian's, driven by
// playwright-core): sign in with a token, find the held request, write a
// comment and click Approve. Prints what the page showed as JSON.
// Usage: node approve_page.js URL REQUEST_ID (token in CLSF_TOKEN)
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [url, id] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Root in a container has no user namespaces for the sandbox.
    args: ["--no-sandbox"],
  });
  try {
    // The test CA is not in the browser's store; the page's TLS is
    // verified by the Rust side of the test.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    await page.goto(url + "/#" + id);
    await page.getByLabel("Your token").fill(process.env.CLSF_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    const request = page.locator(`article[data-request="${id}"]`);
    await request.waitFor();
    const shown = await request.innerText();
    await request.getByLabel("Comment").fill("approved in the browser");
    await request.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("status").filter({ hasText: "is now approved" }).waitFor();
    const status = await page.getByRole("status").innerText();
    console.log(JSON.stringify({ shown, status }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
