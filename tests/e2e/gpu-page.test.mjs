// End to end, as a person uses it: the built app under Xvfb, driven through tauri-driver +
// WebKitWebDriver, with a fake NVML of 4 GPUs whose readings this test changes while it runs.
// Screenshots land in tests/e2e/artifacts/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { WebDriver } from "./webdriver.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const app = process.env.GPUDECK_BIN ?? join(repo, "target/debug/gpudeck");
const artifacts = join(repo, "tests/e2e/artifacts");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "gpudeck-e2e-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const fakeLib = join(work, "libnvidia-ml.so.1");
execFileSync("cc", ["-shared", "-fPIC", "-O2", "-o", fakeLib, join(repo, "tests/fake-nvml/fake_nvml.c"), "-lpthread"]);
const readings = join(work, "gpus.txt");
const gpu = (i, util) =>
  `gpu ${i} GPU-e2e00000-0000-4000-8000-${String(i).padStart(12, "0")} ${80 * 2 ** 30} ${(i + 1) * 2 ** 30} ${util} 7 ${45 + i} ${150000 + i * 1000} 400000 -1 1410 1410 1593 8 0 NVIDIA A100-SXM4-80GB`;
function writeReadings(utils) {
  const text = ["driver 550.54.15", "cuda 12040", ...utils.map((u, i) => gpu(i, u))].join("\n") + "\n";
  writeFileSync(readings + ".tmp", text);
  renameSync(readings + ".tmp", readings);
}
writeReadings([11, 22, 33, 44]);

async function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const children = [];
function stopAll() {
  // SIGTERM lets tauri-driver stop WebKitWebDriver; SIGKILL would orphan it and hang pipes.
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGTERM");
}

async function display() {
  if (process.env.DISPLAY) return process.env.DISPLAY;
  for (let n = 90; n < 110; n++) {
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    const x = spawn("Xvfb", [`:${n}`, "-screen", "0", "1280x860x24", "-nolisten", "tcp"], { stdio: "ignore" });
    children.push(x);
    for (let i = 0; i < 50 && !existsSync(`/tmp/.X11-unix/X${n}`); i++) await sleep(100);
    return `:${n}`;
  }
  throw new Error("no free X display for Xvfb");
}

/** A tauri-driver with the app's environment (capabilities carry no env) and its own data dir. */
async function driver(env) {
  const port = await freePort();
  const nativePort = await freePort();
  const td = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(td);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/status`)).ok) break;
    } catch {
      await sleep(100);
    }
  }
  return { wd: new WebDriver(base), stop: () => td.kill("SIGTERM") };
}

async function shot(wd, name) {
  // Let the page paint its latest state before the capture.
  await wd.cmd("POST", "/execute/async", { script: "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))", args: [] });
  await sleep(300);
  const png = Buffer.from(await wd.screenshot(), "base64");
  writeFileSync(join(artifacts, name), png);
  assert.ok(png.length > 10000, `${name} looks empty (${png.length} bytes)`);
}

describe("GPU page on a fake NVML with 4 GPUs", () => {
  let wd, drv, env;
  before(async () => {
    assert.ok(existsSync(app), `build the app first: ${app}`);
    env = {
      DISPLAY: await display(),
      FAKE_NVML_FILE: readings,
      GPUDECK_NVML_LIB: fakeLib,
      XDG_DATA_HOME: join(work, "xdg"),
      LANG: "C",
    };
    delete process.env.GPUDECK_DATA_DIR;
    drv = await driver(env);
    wd = drv.wd;
    await wd.start(app);
  });
  after(async () => {
    await wd?.stop();
    stopAll();
  });

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
    await wd.start(app);
    await wd.until("Chinese after restart", async () => (await wd.text(await wd.find('[data-testid="nav-gpus"]'))) === "GPU");
    assert.equal(await wd.text(await wd.find('[data-testid="nav-settings"]')), "设置");
    await wd.click(await wd.find('[data-testid="nav-system"]'));
    await wd.until("checks in Chinese", async () => /正常/.test(await wd.text(await wd.find('[data-testid="check-docker"]'))), 15000);
    await shot(wd, "system-zh.png");
  });
});

describe("GPU page with no NVIDIA driver and no Docker engine", () => {
  let wd;
  before(async () => {
    const drv = await driver({
      DISPLAY: await display(),
      GPUDECK_NVML_LIB: "/nonexistent/libnvidia-ml.so.1",
      DOCKER_HOST: "unix:///nonexistent/docker.sock",
      XDG_DATA_HOME: join(work, "xdg-nodriver"),
      LANG: "C",
    });
    wd = drv.wd;
    await wd.start(app);
  });
  after(async () => {
    await wd?.stop();
    stopAll();
  });

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
