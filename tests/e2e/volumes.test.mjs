// End to end: create a volume and resize it by clicking; pick it in the replicaSet form.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { setup, shot, typeInto } from "./harness.mjs";

const name = `e2evol${process.pid}`;

describe("Volumes by clicking", () => {
  let h, wd;
  before(async () => {
    h = await setup({ gpus: 1, tag: "vol" });
    wd = h.wd;
  });
  after(async () => {
    try {
      execFileSync(h.cli, ["vol", "rm", name], { env: h.env, stdio: "ignore" });
    } catch {}
    await h.stop();
  });
  const type = (css, text) => typeInto(wd, css, text);

  it("creates a 20 MB volume and shows its size in both units", async () => {
    await wd.click(await wd.find('[data-testid="nav-volumes"]'));
    await wd.until("form", () => wd.find('[data-testid="vol-form-name"]'));
    await type('[data-testid="vol-form-name"]', name);
    await type('[data-testid="vol-form-size"]', "20MB");
    await wd.click(await wd.find('[data-testid="vol-form-submit"]'));
    const size = await wd.until("row", () => wd.find(`[data-testid="vol-row-${name}"] [data-testid="vol-size"]`), 20000);
    assert.equal(await wd.text(size), "20.0 MB (19.1 MiB)");
    // Honest about the kind of limit: this machine's data folder is not on XFS with quotas.
    assert.equal(await wd.text(await wd.find(`[data-testid="vol-row-${name}"] [data-testid="vol-kind"]`)), "image file");
  });

  it("refuses a bad size with a clear error, then resizes to 40 MB", async () => {
    await wd.click(await wd.find(`[data-testid="vol-row-${name}"] td strong`));
    await type('[data-testid="vol-resize-size"]', "40XB");
    await wd.click(await wd.find('[data-testid="vol-resize"]'));
    await wd.click(await wd.find('[data-testid="vol-resize-yes"]'));
    const err = await wd.until("error", () => wd.find('[role="alert"][data-code="invalid_input"]'));
    assert.match(await wd.exec("return document.querySelector('[role=alert] details p').textContent"), /unknown unit/);
    assert.ok(err);
    await type('[data-testid="vol-resize-size"]', "40MB");
    await wd.click(await wd.find('[data-testid="vol-resize"]'));
    await wd.click(await wd.find('[data-testid="vol-resize-yes"]'));
    await wd.until("version 2", () => wd.find('[data-testid="vol-version-2"]'), 30000);
    assert.equal(await wd.text(await wd.find(`[data-testid="vol-row-${name}"] [data-testid="vol-size"]`)), "40.0 MB (38.1 MiB)");
    assert.match(await wd.text(await wd.find('[data-testid="vol-version-2"]')), /v2 \d{1,2}\/\d{1,2}\/\d{4}, \d{1,2}:\d{2}:\d{2} [AP]M /);
    await shot(wd, "volumes-en.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("Chinese", async () => (await wd.text(await wd.find('[data-testid="nav-volumes"]'))) === "数据卷");
    assert.match(await wd.text(await wd.find('[data-testid="vol-limit-kind"]')), /镜像文件中的 ext4/);
    // Times follow the UI's language, not the system's (seen: "12/4/2026, 4:58:48 AM" under 中文).
    assert.match(await wd.text(await wd.find('[data-testid="vol-version-2"]')), /v2 \d{4}\/\d{1,2}\/\d{1,2} \d{2}:\d{2}:\d{2} /);
    await shot(wd, "volumes-zh.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="en"]'));
  });

  it("is offered in the replicaSet form", async () => {
    await wd.click(await wd.find('[data-testid="nav-replicasets"]'));
    await wd.click(await wd.until("new", () => wd.find('[data-testid="rs-new"]')));
    await wd.click(await wd.until("volume option", () => wd.find(`[data-testid="rs-form-volume"] option[value="${name}-2"]`)));
    const binds = await wd.exec("return document.querySelector('[data-testid=rs-form-binds]').value");
    assert.equal(binds, `${name}-2:/data`);
  });

  it("can be created inline from the replicaSet form", async () => {
    await wd.click(await wd.find('[data-testid="rs-form-new-volume"]'));
    await type('[data-testid="rs-form-volume-name"]', `${name}b`);
    await type('[data-testid="rs-form-volume-size"]', "10MB");
    await wd.click(await wd.find('[data-testid="rs-form-volume-create"]'));
    await wd.until("bound inline", async () => (await wd.exec("return document.querySelector('[data-testid=rs-form-binds]').value")).includes(`${name}b-1:/data`), 20000);
    execFileSync(h.cli, ["vol", "rm", `${name}b`], { env: h.env });
  });
});
