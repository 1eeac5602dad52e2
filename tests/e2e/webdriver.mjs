// A minimal W3C WebDriver client (fetch only) for tauri-driver + WebKitWebDriver.
export class WebDriver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async cmd(method, path, body) {
    const url = this.session && !path.startsWith("/session") ? `${this.base}/session/${this.session}${path}` : `${this.base}${path}`;
    const res = await fetch(url, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.value ?? json)}`);
    return json.value;
  }

  async start(application) {
    const v = await this.cmd("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application }, browserName: "wry" } },
    });
    this.session = v.sessionId;
    return v;
  }

  async stop() {
    if (this.session) await this.cmd("DELETE", `/session/${this.session}`).catch(() => {});
    this.session = null;
  }

  exec(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  async find(css) {
    const v = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return Object.values(v)[0];
  }

  async findAll(css) {
    const v = await this.cmd("POST", "/elements", { using: "css selector", value: css });
    return v.map((e) => Object.values(e)[0]);
  }

  text(el) {
    return this.cmd("GET", `/element/${el}/text`);
  }

  click(el) {
    return this.cmd("POST", `/element/${el}/click`, {});
  }

  screenshot() {
    return this.cmd("GET", "/screenshot");
  }

  /** Polls `f` until it returns a truthy value or `ms` pass; returns that value or throws. */
  async until(what, f, ms = 10000) {
    const end = Date.now() + ms;
    let last;
    for (;;) {
      try {
        const v = await f();
        if (v) return v;
        last = v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
