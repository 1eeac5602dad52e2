// End to end: an admin adds a catalog entry in 中文 by pasting it into the app; a member finds it,
// fills the form generated from its parameters, sees the exact argv, and launches it: the
// replicaSet runs the rendered command (an injection attempt arrives as literal text) as her.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, existsSync, statSync } from "node:fs";
import { setup, shot, sleep, typeInto } from "./harness.mjs";

const name = `回声${process.pid}`;
const rs = `cat${process.pid}`;
const outDir = `/home/alice/e2e-cat-${process.pid}`;
const entry = {
  format: "gpudeck-catalog",
  schema: 1,
  entries: [
    {
      name,
      version: "1.0",
      image: "gpudeck-test/busybox:latest",
      displayName: { "zh-CN": "回声服务", en: "Echo service" },
      description: { "zh-CN": "把消息写入输出目录。", en: "Writes the message into the output folder." },
      framework: "busybox",
      tasks: ["Predict"],
      cpuOnly: true,
      gpus: { min: 0, max: 0, default: 0 },
      command: ["sh", "-c", 'printf %s "$1" > "$2/result.txt"; trap "exit 0" TERM; while true; do sleep 1; done', "_", "{{inputs.msg}}", "{{outputs.dir}}"],
      params: [
        { name: "msg", kind: "input", type: "string", required: true, index: 0, displayName: { "zh-CN": "消息", en: "Message" } },
        { name: "dir", kind: "output", type: "path", required: true, index: 1, displayName: { "zh-CN": "输出目录", en: "Output folder" }, help: { "zh-CN": "你的主目录下的文件夹", en: "A folder under your home" } },
        { name: "level", kind: "config", type: "enum", options: ["low", "high"], default: "low", index: 2, displayName: { "zh-CN": "级别", en: "Level" } },
      ],
    },
  ],
};

describe("The catalog", () => {
  let admin;
  let member;
  after(async () => {
    try {
      if (admin) execFileSync(admin.cli, ["rs", "rm", rs], { env: admin.env, stdio: "ignore" });
    } catch {}
    if (member) await member.stop();
    if (admin) admin.stopService();
  });

  it("an admin adds an entry in 中文; a member launches it from the form (en, zh-CN)", async () => {
    admin = await setup({ gpus: 0, tag: "cat", asUser: "dana", language: "zh-CN" });
    let wd = admin.wd;
    await wd.click(await wd.find('[data-testid="nav-catalog"]'));
    await wd.click(await wd.until("import", () => wd.find('[data-testid="cat-import-open"]')));
    await typeInto(wd, '[data-testid="cat-import-text"]', JSON.stringify(entry));
    await wd.click(await wd.find('[data-testid="cat-import-submit"]'));
    const row = `[data-testid="cat-row-${name}"]`;
    await wd.until("the entry's row", () => wd.find(row), 10000);
    assert.match(await wd.text(await wd.find(row)), /回声服务/);
    assert.equal(await wd.text(await wd.find(`${row} [data-testid="cat-badge"]`)), "无需 GPU");
    await shot(wd, "catalog-admin-zh.png");
    await admin.stop({ keepService: true });

    // alice, a member, on the same service.
    mkdirSync(outDir, { recursive: true });
    execFileSync("chown", ["alice:alice", outDir]);
    member = await setup({ gpus: 0, tag: "cat2", asUser: "alice", language: "en", socket: admin.socket });
    wd = member.wd;
    await wd.click(await wd.find('[data-testid="nav-catalog"]'));
    await wd.click(await wd.until("the entry", () => wd.find(`${row} td strong`), 10000));
    assert.equal(await wd.text(await wd.find(`${row} td strong`)), "Echo service");
    await wd.until("the form", () => wd.find('[data-testid="cat-form"]'));
    // The form says what is missing before anything is sent.
    assert.match(await wd.text(await wd.find('[data-testid="cat-form"]')), /Required\./);
    const msg = "hello; $(id) `id`";
    await typeInto(wd, '[data-testid="cat-rs-name"]', rs);
    await typeInto(wd, '[data-testid="cat-param-inputs-msg"]', msg);
    await typeInto(wd, '[data-testid="cat-param-outputs-dir"]', outDir);
    await wd.click(await wd.find('[data-testid="cat-param-configs-level"] option[value="high"]'));
    const argv = await wd.until("the argv", async () => {
      const t = await wd.text(await wd.find('[data-testid="cat-argv"]'));
      return t.includes("/mnt/gpudeck/outputs/dir") ? t : null;
    }, 10000);
    assert.ok(argv.includes(JSON.stringify(msg).slice(1, -1)), argv);
    await shot(wd, "catalog-form-en.png");
    await wd.click(await wd.find('[data-testid="cat-launch"]'));
    await wd.until("running", async () => /is running/.test(await wd.text(await wd.find('[data-testid="cat-form"]'))), 30000);
    const file = `${outDir}/result.txt`;
    for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(100);
    assert.equal(readFileSync(file, "utf8"), msg, "the value arrived as one literal argument");
    const uid = Number(execFileSync("id", ["-u", "alice"]).toString().trim());
    assert.equal(statSync(file).uid, uid, "it ran as alice");
    const info = JSON.parse(execFileSync(member.cli, ["rs", "info", rs, "--json"], { env: admin.env }).toString());
    assert.equal(info.spec.owner, "alice");
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("中文", async () => (await wd.text(await wd.find('[data-testid="nav-catalog"]'))) === "镜像目录");
    await shot(wd, "catalog-form-zh.png");
  });
});
