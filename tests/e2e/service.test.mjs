// End to end as lab members: the app runs as a non-root user, a client of gpudeckd. A member
// creates a replicaSet and rolls it back by clicking; the replicaSet is theirs. A user in no
// group, or with no service running, gets the screen that says what to do, in both languages.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { setup, shot, typeInto } from "./harness.mjs";

const name = `mem${process.pid}`;

describe("As lab members", () => {
  let h;
  after(async () => {
    if (h) {
      try {
        execFileSync(h.cli, ["rs", "rm", name], { env: h.env, stdio: "ignore" });
      } catch {}
      await h.stop();
    }
  });

  it("a member creates a replicaSet, owned by her, and rolls it back", async () => {
    h = await setup({ gpus: 2, tag: "mem", asUser: "alice", language: "en" });
    const wd = h.wd;
    await wd.click(await wd.find('[data-testid="nav-users"]'));
    await wd.until("who she is", async () => /alice \(member\)/.test(await wd.text(await wd.find('[data-testid="users-you"]'))));
    await wd.click(await wd.find('[data-testid="nav-replicasets"]'));
    await wd.click(await wd.until("new button", () => wd.find('[data-testid="rs-new"]')));
    await typeInto(wd, '[data-testid="rs-form-name"]', name);
    await wd.click(await wd.until("image option", () => wd.find('[data-testid="rs-form-image"] option[value="gpudeck-test/busybox:latest"]')));
    await typeInto(wd, '[data-testid="rs-form-gpus"]', "1");
    await typeInto(wd, '[data-testid="rs-form-command"]', `sh -c "trap 'exit 0' TERM; while true; do sleep 1; done"`);
    await wd.click(await wd.find('[data-testid="rs-form-submit"]'));
    const row = `[data-testid="rs-row-${name}"]`;
    await wd.until("running", async () => (await wd.text(await wd.find(`${row} [data-testid="rs-status"]`))) === "running", 30000);
    assert.equal(await wd.text(await wd.find(`${row} [data-testid="rs-owner"]`)), "alice");
    await wd.click(await wd.find(`${row} td strong`));
    await typeInto(wd, '[data-testid="rs-patch-gpus"]', "0");
    await wd.click(await wd.find('[data-testid="rs-patch"]'));
    await wd.click(await wd.find('[data-testid="rs-patch-yes"]'));
    await wd.until("version 2", () => wd.find('[data-testid="rs-version-2"]'), 30000);
    await wd.click(await wd.until("rollback button", () => wd.find('[data-testid="rs-rollback-1"]')));
    await wd.click(await wd.find('[data-testid="rs-rollback-1-yes"]'));
    await wd.until("version 3", () => wd.find('[data-testid="rs-version-3"]'), 30000);
    const info = JSON.parse(execFileSync(h.cli, ["rs", "info", name, "--json"], { env: h.env }).toString());
    assert.equal(info.version, 3);
    assert.equal(info.spec.owner, "alice");
    assert.equal(info.gpus.length, 1);
    // It runs as her.
    const uid = execFileSync("id", ["-u", "alice"]).toString().trim();
    const id = JSON.parse(execFileSync(h.cli, ["rs", "exec", name, "--json", "--", "id", "-u"], { env: h.env }).toString());
    assert.equal(id.stdout.trim(), uid);
    await shot(wd, "member-rs-en.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("中文", async () => (await wd.text(await wd.find('[data-testid="nav-replicasets"]'))) === "副本集");
    await shot(wd, "member-rs-zh.png");
    await wd.click(await wd.find('[data-testid="nav-users"]'));
    await wd.until("limits", () => wd.find('[data-testid="users-you"]'));
    await shot(wd, "member-users-zh.png");
    execFileSync(h.cli, ["rs", "rm", name], { env: h.env });
    await h.stop();
    h = null;
  });

  for (const language of ["en", "zh-CN"]) {
    it(`a user in no group is told to ask the admin (${language})`, async () => {
      const g = await setup({ gpus: 1, tag: "nog", asUser: "carol", language });
      try {
        const gate = await g.wd.until("the gate", () => g.wd.find('[data-testid="service-gate"][data-code="service_denied"]'), 20000);
        assert.ok(gate);
        assert.match(await g.wd.text(await g.wd.find('[data-testid="gate-fix"]')), /usermod -aG gpudeck carol/);
        await shot(g.wd, `gate-denied-${language}.png`);
      } finally {
        await g.stop();
      }
    });
  }

  it("with no service running, the app says how to start it", async () => {
    const g = await setup({ gpus: 1, tag: "nos", asUser: "alice", service: false, language: "en" });
    try {
      await g.wd.until("the gate", () => g.wd.find('[data-testid="service-gate"][data-code="service_unreachable"]'), 20000);
      assert.match(await g.wd.text(await g.wd.find('[data-testid="gate-fix"]')), /systemctl start gpudeck/);
      await shot(g.wd, "gate-unreachable-en.png");
    } finally {
      await g.stop();
    }
  });
});
