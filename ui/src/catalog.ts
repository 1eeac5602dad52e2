// Pure helpers for the catalog page: text in the UI's language, a form's values and checks.
import type { I18n } from "./bindings/I18n";
import type { Param } from "./bindings/Param";

/** The text in `lang`, else the other language's, else `fallback`. */
export function pick(t: I18n | undefined, lang: string, fallback = ""): string {
  if (!t) return fallback;
  const zh = t["zh-CN"] ?? undefined;
  const en = t.en ?? undefined;
  return (lang.startsWith("zh") ? zh ?? en : en ?? zh) ?? fallback;
}

/** `inputs.file` for a parameter. */
export function key(p: Param): string {
  return `${p.kind}s.${p.name}`;
}

/** The form's starting values: the defaults (secrets never have one). */
export function initialValues(params: Param[]): Record<string, string> {
  const v: Record<string, string> = {};
  for (const p of params) v[key(p)] = p.default ?? (p.type === "bool" ? "false" : "");
  return v;
}

export type Problem = { key: string; what: "required" | "number" | "integer" | "range" | "pattern" };

/** What the form says before asking the service (which checks everything again). */
export function problems(params: Param[], values: Record<string, string>): Problem[] {
  const out: Problem[] = [];
  for (const p of params) {
    const k = key(p);
    const v = (values[k] ?? "").trim();
    if (!v) {
      if (p.required) out.push({ key: k, what: "required" });
      continue;
    }
    if (p.type === "int" || p.type === "float") {
      const n = Number(v);
      if (!Number.isFinite(n)) out.push({ key: k, what: "number" });
      else if (p.type === "int" && !Number.isInteger(n)) out.push({ key: k, what: "integer" });
      else if ((p.min != null && n < p.min) || (p.max != null && n > p.max)) out.push({ key: k, what: "range" });
    }
    if (p.pattern && (p.type === "string" || p.type === "path")) {
      try {
        if (!new RegExp(`^(?:${p.pattern})$`).test(v)) out.push({ key: k, what: "pattern" });
      } catch {
        /* the service says it */
      }
    }
  }
  return out;
}

/** The values to send: empty optional ones left out. */
export function toSend(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ""));
}
