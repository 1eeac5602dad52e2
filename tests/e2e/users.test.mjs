// End to end: an admin sets a member's resources on the Users page (volume quota, memory and
// CPUs per container), sees them in the table in both languages, and the service holds them.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { setup, shot, typeInto } from "./harness.mjs";

describe("Users & limits", () => {
  let admin;
  after(async () => {
    if (admin) await admin.stop();
  });

  it("an admin sets bob's volume quota, memory and CPUs from the form (en, then zh-CN)", async () => {
    admin = await setup({ gpus: 0, tag: "usr", asUser: "dana", language: "en" });
    const wd = admin.wd;
    await wd.click(await wd.find('[data-testid="nav-users"]'));
    await wd.until("the form", () => wd.find('[data-testid="policy-form"]'));
    await typeInto(wd, '[data-testid="policy-user"]', "bob");
    await typeInto(wd, '[data-testid="policy-vol-quota"]', "50GB");
    await typeInto(wd, '[data-testid="policy-memory"]', "16GiB");
    await typeInto(wd, '[data-testid="policy-cpus"]', "2.5");
    await wd.click(await wd.find('[data-testid="policy-save"]'));
    await wd.until("bob's row", async () => {
      const t = await wd.find('[data-testid="policy-table"]').then((e) => wd.text(e), () => "");
      return /bob/.test(t) && /50\.0 GB/.test(t);
    }, 10000);
    const table = await wd.text(await wd.find('[data-testid="policy-table"]'));
    assert.match(table, /Volumes in all/);
    assert.match(table, /2\.5/);
    await shot(wd, "users-limits-en.png");
    // A size it cannot read is said in a sentence, and nothing changes.
    await typeInto(wd, '[data-testid="policy-memory"]', "lots");
    await wd.click(await wd.find('[data-testid="policy-save"]'));
    const err = await wd.until("the error", () => wd.find('[role="alert"]'), 10000);
    assert.match(await wd.text(err), /no number/);
    const pol = JSON.parse(execFileSync(admin.cli, ["policy", "ls", "--json"], { env: admin.env }).toString());
    const bob = pol.rows.find((r) => r.user === "bob");
    assert.equal(bob.maxVolumeBytes, 50_000_000_000);
    assert.equal(bob.memoryBytes, 16 * 2 ** 30);
    assert.equal(bob.cpusMilli, 2500);
    // The same page in 中文, switched live.
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("中文", async () => /卷总容量/.test(await wd.text(await wd.find('[data-testid="policy-table"]'))), 10000);
    await shot(wd, "users-limits-zh.png");
  });
});
