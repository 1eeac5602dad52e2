import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import en from "./i18n/en";
import zhCN from "./i18n/zh-CN";

type Tree = { [k: string]: string | Tree };

function keys(t: Tree, prefix = ""): string[] {
  return Object.entries(t).flatMap(([k, v]) => (typeof v === "string" ? [prefix + k] : keys(v, `${prefix}${k}.`)));
}

function get(t: Tree, key: string): string | Tree | undefined {
  return key.split(".").reduce<string | Tree | undefined>((n, k) => (typeof n === "object" ? n[k] : undefined), t);
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === "bindings" || f === "i18n" ? [] : sources(p);
    return /\.tsx?$/.test(f) && !f.endsWith(".test.ts") ? [p] : [];
  });
}

describe("translations", () => {
  it("zh-CN and en have exactly the same keys", () => {
    expect(keys(zhCN as Tree).sort()).toEqual(keys(en as Tree).sort());
  });

  it("no string is empty, and placeholders match across languages", () => {
    for (const k of keys(en as Tree)) {
      const a = get(en as Tree, k) as string;
      const b = get(zhCN as Tree, k) as string;
      expect(a.trim(), k).not.toBe("");
      expect(b.trim(), k).not.toBe("");
      const ph = (s: string) => (s.match(/{{\w+}}/g) ?? []).sort();
      expect(ph(b), k).toEqual(ph(a));
    }
  });

  it("every literal key the UI uses exists in both languages", () => {
    const used = new Set<string>();
    for (const f of sources(join(__dirname))) {
      for (const m of readFileSync(f, "utf8").matchAll(/\bt\(\s*"([\w.]+)"/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(20);
    for (const k of used) {
      expect(typeof get(en as Tree, k), `en: ${k}`).toBe("string");
      expect(typeof get(zhCN as Tree, k), `zh-CN: ${k}`).toBe("string");
    }
  });

  it("every error code the Rust core can send has a sentence", () => {
    const rust = readFileSync(join(__dirname, "../../src-tauri/core/src/error.rs"), "utf8");
    const codes = [...rust.matchAll(/=> "(\w+)",/g)].map((m) => m[1]!);
    expect(codes.length).toBeGreaterThan(3);
    for (const c of codes) expect(typeof get(en as Tree, `errors.${c}`), c).toBe("string");
  });

  it("every doctor check id has a label", () => {
    const rust = readFileSync(join(__dirname, "../../src-tauri/core/src/doctor.rs"), "utf8");
    const ids = new Set([...rust.matchAll(/check\(\s*"(\w+)"/g)].map((m) => m[1]!));
    expect(ids.size).toBe(6);
    for (const id of ids) expect(typeof get(en as Tree, `system.check.${id}`), id).toBe("string");
  });
});
