// The end-to-end harness: the fake NVML and its readings file, an X display (Xvfb when none),
// tauri-driver with the app's environment, and screenshots into tests/e2e/artifacts/.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import assert from "node:assert/strict";
import { WebDriver } from "./webdriver.mjs";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const app = process.env.GPUDECK_APP ?? join(repo, "target/debug/gpudeck-app");
/** The CLI and the service beside it. */
export const cli = join(dirname(app), "gpudeck");
export const gpudeckd = join(dirname(app), "gpudeckd");
const artifacts = join(repo, "tests/e2e/artifacts");
mkdirSync(artifacts, { recursive: true });
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fake NVML serving `n` A100s from a file the test rewrites. */
export function fakeNvml(work, n, tag) {
  const lib = join(work, "libnvidia-ml.so.1");
  execFileSync("cc", ["-shared", "-fPIC", "-O2", "-o", lib, join(repo, "tests/fake-nvml/fake_nvml.c"), "-lpthread"]);
  const file = join(work, "gpus.txt");
  const gpu = (i, util) =>
    `gpu ${i} GPU-${tag}${String(process.pid).padStart(6, "0")}-0000-4000-8000-${String(i).padStart(12, "0")} ${80 * 2 ** 30} ${(i + 1) * 2 ** 30} ${util} 7 ${45 + i} ${150000 + i * 1000} 400000 -1 1410 1410 1593 8 0 NVIDIA A100-SXM4-80GB`;
  const write = (utils) => {
    const text = ["driver 550.54.15", "cuda 12040", ...utils.map((u, i) => gpu(i, u))].join("\n") + "\n";
    writeFileSync(file + ".tmp", text);
    renameSync(file + ".tmp", file);
  };
  write(Array.from({ length: n }, (_, i) => 11 * (i + 1)));
  return { lib, file, write };
}

async function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const children = [];
let xvfb = null;
async function display() {
  if (process.env.DISPLAY) return process.env.DISPLAY;
  if (xvfb) return xvfb;
  for (let n = 90; n < 120; n++) {
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    const x = spawn("Xvfb", [`:${n}`, "-screen", "0", "1280x860x24", "-nolisten", "tcp"], { stdio: "ignore" });
    x.unref();
    children.push(x);
    for (let i = 0; i < 50 && !existsSync(`/tmp/.X11-unix/X${n}`); i++) await sleep(100);
    xvfb = `:${n}`;
    return xvfb;
  }
  throw new Error("no free X display for Xvfb");
}

/** Starts gpudeckd (as the test runs: root) on its own socket and data folder; resolves when it
 * answers. `env` is the service's (the fake NVML, the engine). */
export async function startService(work, env) {
  const socket = join(work, "gpudeck.sock");
  const d = spawn(gpudeckd, ["--socket", socket, "--data-dir", join(work, "data")], { env: { ...env, RUST_LOG: "warn" }, stdio: ["ignore", "inherit", "inherit"] });
  children.push(d);
  for (let i = 0; i < 300 && !existsSync(socket); i++) await sleep(50);
  assert.ok(existsSync(socket), "gpudeckd did not start");
  return { socket, process: d };
}

/** Starts tauri-driver with `env` (capabilities carry no env) and a session on the app, a client
 * of its own gpudeckd (`service: false`: none, the app must say so). The app never runs as root:
 * it runs as `asUser` (default dana, an admin; alice and bob are members, carol in no group), with
 * a fresh home of its own for this setup, whose saved UI language is `language` when given. */
export async function setup({ gpus = 4, tag = "e2e0", env: extra = {}, nvml = true, service = true, asUser = "dana", language = null, socket = null } = {}) {
  const work = mkdtempSync(join(tmpdir(), "gpudeck-e2e-"));
  execFileSync("chmod", ["755", work]);
  const fake = nvml ? fakeNvml(work, gpus, tag) : null;
  const env = {
    ...process.env,
    DISPLAY: await display(),
    XDG_DATA_HOME: join(work, "xdg"),
    XDG_CONFIG_HOME: join(work, "config"),
    LANG: "C",
    ...(fake ? { FAKE_NVML_FILE: fake.file, GPUDECK_NVML_LIB: fake.lib } : {}),
    ...extra,
  };
  delete env.GPUDECK_DATA_DIR;
  // `socket`: the service of an earlier setup (two users on one service).
  const svc = service && !socket ? await startService(work, env) : null;
  env.GPUDECK_SOCKET = socket ?? (svc ? svc.socket : join(work, "none.sock"));
  const port = await freePort();
  const td = spawn("tauri-driver", ["--port", String(port), "--native-port", String(await freePort())], { env, stdio: ["ignore", "inherit", "inherit"] });
  children.push(td);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/status`)).ok) break;
    } catch {
      await sleep(100);
    }
  }
  assert.ok(existsSync(app), `build the app first: ${app}`);
  const wd = new WebDriver(base);
  const launch = asUserLauncher(work, asUser, env, language);
  await wd.start(launch);
  // The app's shell, or the screen that says why the service cannot be used.
  await wd.until("the app shell", () => wd.find('[data-testid="nav-gpus"], [data-testid="service-gate"][data-code]'));
  return {
    wd,
    env,
    app,
    cli,
    fake,
    work,
    launch,
    socket: env.GPUDECK_SOCKET,
    stop: async ({ keepService = false } = {}) => {
      await wd.stop();
      // SIGTERM lets tauri-driver stop WebKitWebDriver; SIGKILL would orphan it and hang pipes.
      td.kill("SIGTERM");
      if (svc && !keepService) svc.process.kill("SIGTERM");
    },
    stopService: () => {
      if (svc) svc.process.kill("SIGTERM");
    },
  };
}

/** A launcher script that runs the app as `user` (WebKitWebDriver starts it as root): a fresh
 * home of theirs in the test's folder (their UI language in it when given), the test's display and
 * socket. */
function asUserLauncher(work, user, env, language) {
  const home = join(work, `home-${user}`);
  mkdirSync(home, { recursive: true });
  if (language) {
    const dir = join(home, ".local/share/dev.gpudeck.app");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ui-settings.json"), JSON.stringify({ settings: { language } }));
  }
  execFileSync("chown", ["-R", `${user}:`, home]);
  // The build folder is root's: the user runs a copy.
  const copy = join(work, "gpudeck-app");
  if (!existsSync(copy)) {
    execFileSync("cp", [app, copy]);
    execFileSync("chmod", ["755", copy]);
  }
  const script = join(work, `app-as-${user}.sh`);
  writeFileSync(
    script,
    // setpriv execs (runuser would stay as the parent, and WebKitWebDriver would end only it).
    `#!/bin/sh\nexec setpriv --reuid=${user} --regid=${user} --init-groups -- env HOME='${home}' USER='${user}' XDG_CONFIG_HOME='${home}/.config' XDG_DATA_HOME='${home}/.local/share' XDG_RUNTIME_DIR= GPUDECK_SOCKET='${env.GPUDECK_SOCKET}' '${copy}' "$@"\n`,
  );
  execFileSync("chmod", ["755", script]);
  return script;
}

export function stopAll() {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGTERM");
  xvfb = null;
}
process.on("exit", stopAll);

/** Selects all in a field and types over it, as a person would (React sees every key). */
export async function typeInto(wd, css, text) {
  let got;
  // Under load WebKitWebDriver sometimes drops the Ctrl+A chord and the text lands after the old
  // value: the field's text is selected as a person's double-click would, and typing is retried.
  for (let attempt = 0; attempt < 3; attempt++) {
    const el = await wd.find(css);
    await wd.cmd("POST", `/element/${el}/clear`, {});
    await wd.exec("const e = document.querySelector(arguments[0]); e.focus(); e.select?.()", [css]);
    await wd.cmd("POST", `/element/${el}/value`, { text: "\uE009a\uE009" + text });
    got = await wd.exec("return document.querySelector(arguments[0]).value", [css]);
    if (got === text) return;
  }
  assert.equal(got, text, `typed into ${css}`);
}

export async function shot(wd, name) {
  // Let the page paint its latest state before the capture.
  await wd.cmd("POST", "/execute/async", { script: "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))", args: [] });
  await sleep(300);
  const png = Buffer.from(await wd.screenshot(), "base64");
  writeFileSync(join(artifacts, name), png);
  assert.ok(png.length > 10000, `${name} looks empty (${png.length} bytes)`);
}
