import { describe, expect, it } from "vitest";
import { splitArgs } from "./args";

describe("splitArgs", () => {
  it("splits words and keeps quoted groups", () => {
    expect(splitArgs("")).toEqual([]);
    expect(splitArgs("  sleep   infinity ")).toEqual(["sleep", "infinity"]);
    expect(splitArgs(`sh -c "echo hi; sleep 1"`)).toEqual(["sh", "-c", "echo hi; sleep 1"]);
    expect(splitArgs(`echo 'a "b"' c\\ d ""`)).toEqual(["echo", 'a "b"', "c d", ""]);
    expect(splitArgs(`say "x\\"y"`)).toEqual(["say", 'x"y']);
  });
  it("refuses an open quote", () => {
    expect(splitArgs(`sh -c "echo`)).toBeNull();
  });
});
