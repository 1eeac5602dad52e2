// End to end: a person creates a replicaSet by clicking, sees it hold GPUs on the GPU page and
// ports on the Ports page, changes its GPU count, rolls back from the timeline, and deletes it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { setup, shot, sleep, typeInto } from "./harness.mjs";

const name = `e2e${process.pid}`;

describe("ReplicaSets by clicking", () => {
  let h, wd;
  before(async () => {
    h = await setup({ gpus: 4, tag: "rs" });
    wd = h.wd;
  });
  after(async () => {
    try {
      execFileSync(h.cli, ["rs", "rm", name], { env: h.env, stdio: "ignore" });
    } catch {}
    await h.stop();
  });

  const type = (css, text) => typeInto(wd, css, text);
  const status = async () => wd.text(await wd.find(`[data-testid="rs-row-${name}"] [data-testid="rs-status"]`));

  it("creates a replicaSet with 2 GPUs and a port from the form", async () => {
    await wd.click(await wd.find('[data-testid="nav-replicasets"]'));
    await wd.click(await wd.until("new button", () => wd.find('[data-testid="rs-new"]')));
    await type('[data-testid="rs-form-name"]', "Bad-Name");
    await wd.click(await wd.find('[data-testid="rs-form-submit"]'));
    const problem = await wd.until("client-side check", () => wd.find('[data-testid="rs-form-problem"]'));
    assert.match(await wd.text(problem), /lowercase letters/);
    await type('[data-testid="rs-form-name"]', name);
    await wd.click(await wd.until("image option", () => wd.find('[data-testid="rs-form-image"] option[value="gpudeck-test/busybox:latest"]')));
    await type('[data-testid="rs-form-gpus"]', "2");
    await type('input[placeholder="22, 8888"]', "22");
    await type('[data-testid="rs-form-command"]', `sh -c "echo started-ok; exec sleep 1000000"`);
    assert.match(await wd.text(await wd.find('[data-testid="rs-form-free"]')), /4 of 4 GPUs free/);
    await wd.click(await wd.find('[data-testid="rs-form-submit"]'));
    await wd.until("running", async () => (await status()) === "running", 20000);
    assert.match(await wd.text(await wd.find('[data-testid="op-done"]')), new RegExp(`${name}-1 is running`));
  });

  it("shows it holding GPUs on the GPU page and a port on the Ports page", async () => {
    await wd.click(await wd.find('[data-testid="nav-gpus"]'));
    await wd.until("held by chips", async () => {
      const text = await wd.exec("return [...document.querySelectorAll('.gpu-card .held')].map(e => e.innerText).join('|')");
      return (text.match(new RegExp(`${name}-1`, "g")) ?? []).length === 2;
    }, 10000);
    await shot(wd, "rs-gpus-en.png");
    await wd.click(await wd.find('[data-testid="nav-ports"]'));
    await wd.until("port owned by it", async () => (await wd.exec("return document.querySelector('[data-testid=ports-table]')?.innerText ?? ''")).includes(name), 10000);
    await shot(wd, "ports-en.png");
  });

  it("patches to 1 GPU and rolls back to version 1 from the timeline", async () => {
    await wd.click(await wd.find('[data-testid="nav-replicasets"]'));
    await wd.click(await wd.until("row", () => wd.find(`[data-testid="rs-row-${name}"] td strong`)));
    await type('[data-testid="rs-patch-gpus"]', "1");
    await wd.click(await wd.find('[data-testid="rs-patch"]'));
    await wd.click(await wd.find('[data-testid="rs-patch-yes"]'));
    await wd.until("version 2", () => wd.find('[data-testid="rs-version-2"]'), 30000).catch(async (e) => {
      await shot(wd, "rs-patch-failed.png");
      const said = await wd.exec("return document.querySelector('[data-testid=rs-detail]')?.innerText + ' | ' + (document.querySelector('[role=alert]')?.innerText ?? '')");
      throw new Error(`${e.message}; the page said: ${said}`);
    });
    assert.match(await wd.text(await wd.find('[data-testid="rs-version-2"]')), /GPUs 2 → 1/);
    await wd.click(await wd.until("rollback button", () => wd.find('[data-testid="rs-rollback-1"]')));
    await wd.click(await wd.find('[data-testid="rs-rollback-1-yes"]'));
    await wd.until("version 3", () => wd.find('[data-testid="rs-version-3"]'), 30000);
    assert.match(await wd.text(await wd.find('[data-testid="rs-version-3"]')), /rolled back to v1/);
    assert.match(await wd.text(await wd.find(`[data-testid="rs-row-${name}"]`)), new RegExp(`${name}-3`));
    const info = JSON.parse(execFileSync(h.cli, ["rs", "info", name, "--json"], { env: h.env }).toString());
    assert.equal(info.gpus.length, 2);
    assert.equal(info.status, "running");
    // Each replaced version shows the disk its files take.
    assert.match(await wd.text(await wd.find('[data-testid="rs-version-1"]')), /files \d/);
    await shot(wd, "rs-detail-en.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("Chinese", async () => (await status()) === "运行中");
    await shot(wd, "rs-detail-zh.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="en"]'));
  });

  it("marks a pruned version and rolls back to its settings only, after saying so", async () => {
    // The copy way (overlay2) keeps each version's files as a folder: --keep 1 prunes v1's.
    // The layer way: v3 was made from v1's snapshot, so that stays (the running container is
    // built on it) and --keep 0 prunes only v2's.
    const copyWay = execFileSync("docker", ["info", "-f", "{{.Driver}}"], { env: h.env }).toString().trim() === "overlay2";
    const [keep, p, q] = copyWay ? ["1", 1, 2] : ["0", 2, 1];
    const pruned = JSON.parse(execFileSync(h.cli, ["rs", "prune", name, "--keep", keep, "--json"], { env: h.env }).toString());
    assert.deepEqual(pruned.pruned, [p]);
    // Leave and come back: the detail reads the history again.
    await wd.click(await wd.find('[data-testid="nav-ports"]'));
    await wd.click(await wd.find('[data-testid="nav-replicasets"]'));
    await wd.click(await wd.until("row", () => wd.find(`[data-testid="rs-row-${name}"] td strong`)));
    await wd.until("pruned mark", () => wd.find(`[data-testid="rs-pruned-${p}"]`));
    assert.equal((await wd.findAll(`[data-testid="rs-pruned-${q}"]`)).length, 0);
    const button = await wd.find(`[data-testid="rs-rollback-${p}"]`);
    assert.match(await wd.text(button), /settings only/);
    await wd.click(button);
    assert.match(await wd.exec("return document.querySelector('.confirm')?.innerText ?? ''"), /files were pruned/);
    await wd.click(await wd.find(`[data-testid="rs-rollback-${p}-yes"]`));
    await wd.until("version 4", () => wd.find('[data-testid="rs-version-4"]'), 30000);
    assert.match(await wd.text(await wd.find('[data-testid="rs-version-4"]')), /settings only, files not restored/);
    await shot(wd, "rs-pruned-en.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("Chinese", async () => (await status()) === "运行中");
    assert.match(await wd.text(await wd.find(`[data-testid="rs-pruned-${p}"]`)), /文件已清理/);
    await shot(wd, "rs-pruned-zh.png");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="en"]'));
    await wd.until("English", async () => (await status()) === "running");
  });

  it("opens a terminal in the container and follows its log", async () => {
    await wd.click(await wd.find('[data-testid="rs-follow-logs"]'));
    await wd.until("log line", async () => (await wd.text(await wd.find('[data-testid="rs-logs"]'))).includes("started-ok"), 10000);
    await wd.click(await wd.find('[data-testid="rs-open-terminal"]'));
    const input = await wd.until("xterm input", () => wd.find('[data-testid="rs-terminal"] .xterm-helper-textarea'));
    await sleep(500);
    await wd.cmd("POST", `/element/${input}/value`, { text: "echo term-$((40+2))\n" });
    await wd.until("shell answered", async () => {
      const rows = await wd.exec("return document.querySelector('[data-testid=rs-terminal] .xterm-rows')?.innerText ?? ''");
      return rows.includes("term-42");
    }, 10000).catch(async (e) => {
      await shot(wd, "rs-terminal-failed.png");
      const said = await wd.exec("return (document.querySelector('[data-testid=rs-terminal]')?.innerText ?? '') + ' | ' + (document.querySelector('[role=alert]')?.innerText ?? '')");
      throw new Error(`${e.message}; the page said: ${said}`);
    });
    await shot(wd, "rs-terminal-en.png");
    await wd.click(await wd.find('[data-testid="rs-open-terminal"]'));
  });

  it("deletes it after asking", async () => {
    await wd.click(await wd.find('[data-testid="rs-delete"]'));
    await wd.click(await wd.find('[data-testid="rs-delete-yes"]'));
    await wd.until("gone", async () => (await wd.findAll(`[data-testid="rs-row-${name}"]`)).length === 0, 20000);
    const left = execFileSync("docker", ["ps", "-aq", "--filter", `label=gpudeck.replicaset=${name}`]).toString().trim();
    assert.equal(left, "");
  });
});
