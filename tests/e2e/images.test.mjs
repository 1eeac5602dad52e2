// End to end: an admin adds the lab's registry in the app (its login tried first), an image is
// pushed to it, and pulled back by clicking: the tray shows the transfer with a bar per layer,
// in both languages; the registry's browser shows the tag's digest. Real parts: the rig's
// engine and Debian's docker-registry with bcrypt htpasswd auth on 127.0.0.1.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setup, shot, sleep, typeInto } from "./harness.mjs";

/** Whether the engine keeps images in containerd (as fresh Docker 29 installs do). */
function containerdStore() {
  return execFileSync("docker", ["info", "-f", "{{json .DriverStatus}}"]).toString().includes("io.containerd.snapshotter");
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRegistry(user, pass) {
  const dir = mkdtempSync(join(tmpdir(), "gpudeck-reg-"));
  const port = await freePort();
  writeFileSync(join(dir, "htpasswd"), execFileSync("htpasswd", ["-Bbn", user, pass]));
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\nauth:\n  htpasswd:\n    realm: e2e\n    path: ${dir}/htpasswd\n`,
  );
  const child = spawn("docker-registry", ["serve", join(dir, "config.yml")], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("curl", ["-s", "-o", "/dev/null", `http://127.0.0.1:${port}/v2/`]);
      break;
    } catch {
      await sleep(100);
    }
  }
  return { child, host: `127.0.0.1:${port}` };
}

describe("Images and registries", () => {
  let h;
  let reg;
  let image;
  after(async () => {
    if (h) await h.stop();
    if (reg) reg.child.kill();
    if (image) {
      try {
        execFileSync("docker", ["rmi", "-f", image], { stdio: "ignore" });
      } catch {}
    }
  });

  it("an admin adds a registry, pulls from it with a bar per layer, and browses it (en, zh-CN)", async () => {
    const pass = "e2e+/pass?>>";
    reg = await startRegistry("lab", pass);
    image = `${reg.host}/team/e2e${process.pid}:v1`;
    // An image of three layers (the test image's and two more).
    const c = `e2e-img-${process.pid}`;
    execFileSync("docker", ["run", "--name", c, "gpudeck-test/busybox:latest", "sh", "-c", "head -c 20000000 /dev/urandom > /a"]);
    execFileSync("docker", ["commit", c, `${image}-step`]);
    execFileSync("docker", ["rm", c]);
    execFileSync("docker", ["run", "--name", c, `${image}-step`, "sh", "-c", "head -c 20000000 /dev/urandom > /b"]);
    execFileSync("docker", ["commit", c, image]);
    execFileSync("docker", ["rm", c]);
    execFileSync("docker", ["rmi", `${image}-step`]);

    h = await setup({ gpus: 0, tag: "img", asUser: "dana", language: "en" });
    const wd = h.wd;
    await wd.click(await wd.find('[data-testid="nav-images"]'));
    await wd.click(await wd.until("registries tab", () => wd.find('[data-testid="img-tab-registries"]')));
    await wd.until("empty", () => wd.find('[data-testid="reg-empty"]'));
    // A wrong password is refused, and nothing is added.
    await typeInto(wd, '[data-testid="reg-form-name"]', "lab");
    await typeInto(wd, '[data-testid="reg-form-url"]', `http://${reg.host}`);
    await typeInto(wd, '[data-testid="reg-form-user"]', "lab");
    await typeInto(wd, '[data-testid="reg-form-password"]', "wrong");
    await wd.click(await wd.find('[data-testid="reg-form-submit"]'));
    await wd.until("refusal", () => wd.find('.error-box[data-code="registry_auth"]'), 20000);
    assert.ok(await wd.find('[data-testid="reg-empty"]'));
    await typeInto(wd, '[data-testid="reg-form-password"]', pass);
    await wd.click(await wd.find('[data-testid="reg-form-submit"]'));
    await wd.until("the registry's row", () => wd.find('[data-testid="reg-row-lab"]'), 20000);

    // Pushed from the CLI with the registry's credentials, then gone from this machine.
    execFileSync(h.cli, ["image", "push", image, "--json"], { env: h.env });
    execFileSync("docker", ["rmi", image]);

    // Pulled back by clicking; the tray shows it at once and to the end.
    await wd.click(await wd.find('[data-testid="img-tab-local"]'));
    await wd.until("the pull form", () => wd.find('[data-testid="img-pull-ref"]'));
    await typeInto(wd, '[data-testid="img-pull-ref"]', image);
    const t0 = Date.now();
    await wd.click(await wd.find('[data-testid="img-pull"]'));
    // The pull's row (the CLI's push, which an admin sees too, is there already).
    const pull = '[data-testid="jobs-tray"] .job[data-kind="pull"]';
    await wd.until("the pull in the tray", () => wd.find(pull), 10000);
    console.log(`first progress on screen ${Date.now() - t0} ms after the click`);
    await wd.until("done", async () => (await wd.exec("return document.querySelector(arguments[0]).dataset.state", [pull])) !== "running", 60000);
    const tray = await wd.text(await wd.find('[data-testid="jobs-tray"]'));
    assert.equal(await wd.exec("return document.querySelector(arguments[0]).dataset.state", [pull]), "done", tray);
    // The containerd image store keeps the blobs of an image it removed: the base layer, which
    // the test image still uses, is there already and gets no event (nor a bar).
    const want = containerdStore() ? 2 : 3;
    const layers = await wd.findAll(`${pull} [data-testid="job-layer"]`);
    assert.ok(layers.length >= want, `a bar per layer (${layers.length}): ${tray}`);
    assert.match(await wd.text(await wd.find(`${pull} [data-testid="job-summary"]`)), new RegExp(`100% · ${want} of ${want} layers`), tray);
    execFileSync("docker", ["image", "inspect", image], { stdio: "ignore" });
    await wd.until("the pulled image listed", async () => (await wd.text(await wd.find('[data-testid="img-table"]'))).includes(image), 10000);
    await shot(wd, "images-pulled-en.png");

    // The tray stays when the user goes elsewhere and comes back.
    await wd.click(await wd.find('[data-testid="nav-gpus"]'));
    await shot(wd, "images-tray-elsewhere-en.png");
    assert.ok(await wd.until("the tray elsewhere", () => wd.find('[data-testid="jobs-tray"] [data-state="done"]'), 5000));
    await wd.click(await wd.find('[data-testid="nav-images"]'));

    // The registry's browser: repositories, tags, the digest the push made.
    await wd.click(await wd.find('[data-testid="img-tab-registries"]'));
    await wd.click(await wd.until("the registry's row", () => wd.find('[data-testid="reg-row-lab"] td strong'), 10000));
    const repo = image.slice(reg.host.length + 1, image.lastIndexOf(":"));
    await typeInto(wd, '[data-testid="reg-repo"]', repo);
    await wd.click(await wd.find('[data-testid="reg-repo-open"]'));
    await wd.click(await wd.until("the tag", () => wd.find('[data-testid="reg-tag-v1"]'), 10000));
    const digest = await wd.text(await wd.until("the digest", () => wd.find('[data-testid="reg-info-digest"]'), 10000));
    const local = execFileSync("docker", ["image", "inspect", "-f", "{{index .RepoDigests 0}}", image]).toString().trim();
    assert.equal(digest, local.split("@")[1]);

    await wd.click(await wd.find('[data-testid="language-switch"] option[value="zh-CN"]'));
    await wd.until("中文", async () => (await wd.text(await wd.find('[data-testid="nav-images"]'))) === "镜像");
    await wd.exec("document.querySelector('[data-testid=\"reg-info\"]').scrollIntoView()", []);
    await shot(wd, "images-registry-zh.png");
    await wd.click(await wd.find('[data-testid="img-tab-local"]'));
    await wd.until("传输", async () => (await wd.text(await wd.find('[data-testid="jobs-tray"]'))).includes("传输"));
    await shot(wd, "images-pulled-zh.png");

    if (containerdStore()) {
      // There an image whose every layer another local image holds arrives without one layer
      // event: the tray says so rather than "0 of 0 layers".
      const base = `${reg.host}/team/base${process.pid}:v1`;
      execFileSync("docker", ["tag", "gpudeck-test/busybox:latest", base]);
      execFileSync(h.cli, ["image", "push", base, "--json"], { env: h.env });
      execFileSync("docker", ["rmi", base]);
      await typeInto(wd, '[data-testid="img-pull-ref"]', base);
      await wd.click(await wd.find('[data-testid="img-pull"]'));
      const here = "所有层都已在本机";
      await wd.until("the pull that moved nothing", async () => {
        for (const r of await wd.findAll(`${pull} [data-testid="job-summary"]`)) {
          if ((await wd.text(r)).includes(here)) return true;
        }
        return false;
      }, 30000);
      await shot(wd, "images-all-here-zh.png");
      await wd.click(await wd.find('[data-testid="language-switch"] option[value="en"]'));
      await wd.until("the same in English", async () => {
        for (const r of await wd.findAll(`${pull} [data-testid="job-summary"]`)) {
          if ((await wd.text(r)).includes("every layer was here already")) return true;
        }
        return false;
      }, 10000);
      await shot(wd, "images-all-here-en.png");
      execFileSync("docker", ["rmi", base], { stdio: "ignore" });
    }
  });
});
