// End to end, as a person uses it: the built app under Xvfb, driven through tauri-driver +
// WebKitWebDriver, with a fake NVML of 4 GPUs whose readings this test changes while it runs.
// Screenshots land in tests/e2e/artifacts/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { setup, shot, sleep } from "./harness.mjs";

describe("GPU page on a fake NVML with 4 GPUs", () => {
  let h, wd, writeReadings, app;
  before(async () => {
    h = await setup({ gpus: 4, tag: "e2e1" });
    ({ wd, app } = h);
    writeReadings = h.fake.write;
    writeReadings([11, 22, 33, 44]);
  });
  after(() => h?.stop());

  it("shows 4 named GPUs", async () => {
    const cards = await wd.until("4 GPU cards", async () => {
      const c = await wd.findAll('[data-testid="gpu-card"]');
      return c.length === 4 && c;
    });
    for (const [i, c] of cards.entries()) {
      const name = await wd.text(await wd.cmd("POST", `/element/${c}/element`, { using: "css selector", value: '[data-testid="gpu-name"]' }).then((v) => Object.values(v)[0]));
      assert.equal(name, "NVIDIA A100-SXM4-80GB", `card ${i}`);
    }
    const util = await wd.text(await wd.find('[data-index="2"] [data-testid="gpu-util"]'));
    assert.equal(util, "33%");
    const summary = await wd.text(await wd.find('[data-testid="gpu-summary"]'));
    assert.match(summary, /4 GPU\(s\).*550\.54\.15.*CUDA 12\.4/);
    const docker = await wd.find('[data-testid="docker-status"]');
    await wd.until("Docker connected", async () => (await wd.exec('return document.querySelector("[data-testid=docker-status]").dataset.state')) === "connected");
    assert.match(await wd.text(docker), /^Docker \d/);
  });

  it("shows a changed reading within 3 s", async () => {
    writeReadings([11, 22, 93, 44]);
    const t0 = Date.now();
    await wd.until("utilization 93%", async () => (await wd.text(await wd.find('[data-index="2"] [data-testid="gpu-util"]'))) === "93%", 3000);
    const took = Date.now() - t0;
    assert.ok(took < 3000, `took ${took} ms`);
    await sleep(1500); // let the chart draw a few points
    await shot(wd, "gpus-en.png");
  });

  it("refuses an invalid setting with a sentence that says what to do, saving nothing", async () => {
    await wd.click(await wd.find('[data-testid="nav-settings"]'));
    const ep = await wd.until("endpoint field", () => wd.find('[data-testid="settings-endpoint"]'));
    await wd.cmd("POST", `/element/${ep}/clear`, {});
    await wd.cmd("POST", `/element/${ep}/value`, { text: "docker.sock" });
    await wd.click(await wd.find('[data-testid="settings-save"]'));
    const box = await wd.until("error box", () => wd.find('[role="alert"][data-code="invalid_setting"]'));
    assert.match(await wd.text(box), /A setting is not valid; nothing was saved/);
    await shot(wd, "settings-error-en.png");
    await wd.click(await wd.find('[data-testid="settings-reset"]'));
    // The address published ports bind to: not an IP address, refused with the field named.
    const pa = await wd.find('[data-testid="settings-publish-address"]');
    await wd.cmd("POST", `/element/${pa}/value`, { text: "everywhere" });
    await wd.click(await wd.find('[data-testid="settings-save"]'));
    await wd.until("the field named", async () =>
      (await wd.exec("return document.querySelector('[role=alert][data-code=invalid_setting] details p')?.textContent ?? ''")).includes("publishAddress"));
    await wd.click(await wd.find('[data-testid="settings-reset"]'));
  });

  it("lists the host checks on the System page", async () => {
    await wd.click(await wd.find('[data-testid="nav-system"]'));
    const docker = await wd.until("docker check", () => wd.find('[data-testid="check-docker"]'), 15000);
    assert.match(await wd.text(docker), /OK/);
    const nvml = await wd.text(await wd.find('[data-testid="check-nvml"]'));
    assert.match(nvml, /4 GPU\(s\)/);
    await shot(wd, "system-en.png");
    await wd.click(await wd.find('[data-testid="nav-gpus"]'));
  });

  it("says on the System page when containers cannot get GPUs the way Settings say", async () => {
    // This engine (Docker 20.10) has no CDI: GPU requests set to CDI are saved (a valid choice),
    // and the host check says why they cannot work and what to do; Automatic puts it right.
    const pick = async (way) => {
      await wd.click(await wd.find('[data-testid="nav-settings"]'));
      await wd.click(await wd.until("GPU requests", () => wd.find(`[data-testid="settings-gpu-requests"] option[value="${way}"]`)));
      await wd.click(await wd.find('[data-testid="settings-save"]'));
      await wd.until("saved", () => wd.find(".ok-text[role=status]"));
    };
    await pick("cdi");
    await shot(wd, "settings-gpu-requests-en.png");
    await wd.click(await wd.find('[data-testid="nav-system"]'));
    const row = '[data-testid="check-nvidia_container"]';
    await wd.until("CDI off said", async () => /CDI off/.test(await wd.text(await wd.find(row))), 15000);
    const text = await wd.text(await wd.find(row));
    assert.match(text, /daemon\.json/);
    await shot(wd, "system-cdi-off-en.png");
    await pick("auto");
    await wd.click(await wd.find('[data-testid="nav-system"]'));
    await wd.until("hook found again", async () => /get GPUs as `--gpus` does/.test(await wd.text(await wd.find(row))), 15000);
    await wd.click(await wd.find('[data-testid="nav-gpus"]'));
  });

  it("switches to 中文 live, and remembers it", async () => {
    await wd.click(await wd.find('[data-testid="nav-gpus"]'));
    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("Chinese labels", async () => (await wd.text(await wd.find('[data-testid="nav-system"]'))) === "系统");
    const page = await wd.exec("return document.querySelector('.gpu-card').innerText");
    assert.match(page, /利用率/);
    assert.match(page, /占用者/);
    await shot(wd, "gpus-zh.png");
    // A new launch with the same data folder opens in Chinese.
    await wd.stop();
    await wd.start(h.launch);
    await wd.until("Chinese after restart", async () => (await wd.text(await wd.find('[data-testid="nav-gpus"]'))) === "GPU");
    assert.equal(await wd.text(await wd.find('[data-testid="nav-settings"]')), "设置");
    await wd.click(await wd.find('[data-testid="nav-system"]'));
    await wd.until("checks in Chinese", async () => /正常/.test(await wd.text(await wd.find('[data-testid="check-docker"]'))), 15000);
    await shot(wd, "system-zh.png");
    await wd.click(await wd.find('[data-testid="nav-settings"]'));
    await wd.until("settings in Chinese", () => wd.find('[data-testid="settings-publish-address"]'));
    await shot(wd, "settings-zh.png");
    await wd.exec("document.querySelector('[data-testid=settings-gpu-requests]').scrollIntoView(); return 0");
    assert.equal(await wd.exec("return document.querySelector('[data-testid=settings-gpu-requests] option[value=auto]').textContent"), "自动");
    await shot(wd, "settings-zh-gpu-requests.png");
  });
});

describe("GPU page with no NVIDIA driver and no Docker engine", () => {
  let h, wd;
  before(async () => {
    h = await setup({ nvml: false, env: { GPUDECK_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", DOCKER_HOST: "unix:///nonexistent/docker.sock" } });
    wd = h.wd;
  });
  after(() => h?.stop());

  it("opens all the same, says what is missing, and how to fix it", async () => {
    const box = await wd.until("empty state", () => wd.find('[data-testid="no-driver"]'));
    await wd.until("Docker unreachable", async () => (await wd.exec('return document.querySelector("[data-testid=docker-status]").dataset.state')) === "unreachable");
    const badge = await wd.find('[data-testid="docker-status"]');
    assert.equal(await wd.text(badge), "Docker unreachable");
    const help = await wd.exec('return document.querySelector("[data-testid=docker-status]").getAttribute("title")');
    assert.match(help, /\/nonexistent\/docker\.sock/);
    assert.match(help, /systemctl start docker/);
    const text = await wd.text(box);
    assert.match(text, /No NVIDIA driver found/);
    assert.match(text, /\/nonexistent\/libnvidia-ml\.so\.1/);
    assert.match(text, /GPUDECK_NVML_LIB/);
    await shot(wd, "no-driver-en.png");
  });
});
