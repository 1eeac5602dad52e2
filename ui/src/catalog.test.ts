import { describe, expect, it } from "vitest";
import type { Param } from "./bindings/Param";
import { initialValues, key, pick, problems, toSend } from "./catalog";

const p = (o: Partial<Param>): Param => ({
  name: "x",
  kind: "input",
  type: "string",
  required: false,
  index: 0,
  allowDash: false,
  ...o,
});

describe("catalog form", () => {
  it("picks text in the UI's language, falling back", () => {
    expect(pick({ "zh-CN": "回声", en: "Echo" }, "zh-CN")).toBe("回声");
    expect(pick({ "zh-CN": "回声" }, "en")).toBe("回声");
    expect(pick({}, "en", "name")).toBe("name");
  });
  it("starts from the defaults and checks required, numbers and ranges", () => {
    const ps = [p({ name: "file", required: true }), p({ name: "n", kind: "config", type: "int", min: 1, max: 4, default: "2" }), p({ name: "b", type: "bool" })];
    const v = initialValues(ps);
    expect(key(ps[1]!)).toBe("configs.n");
    expect(v).toEqual({ "inputs.file": "", "configs.n": "2", "inputs.b": "false" });
    expect(problems(ps, v)).toEqual([{ key: "inputs.file", what: "required" }]);
    expect(problems(ps, { ...v, "inputs.file": "a", "configs.n": "9" })).toEqual([{ key: "configs.n", what: "range" }]);
    expect(problems(ps, { ...v, "inputs.file": "a", "configs.n": "1.5" })).toEqual([{ key: "configs.n", what: "integer" }]);
    expect(toSend({ a: "", b: "1" })).toEqual({ b: "1" });
  });
});
