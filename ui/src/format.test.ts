import { describe, expect, it } from "vitest";
import { celsius, memory, memPct, pct, power, when } from "./format";
import { appendPoint, WINDOW_MS } from "./history";
import type { GpuSnapshot } from "./bindings/GpuSnapshot";

describe("format", () => {
  it("shows N/A for anything unreported", () => {
    expect(pct(null)).toBe("N/A");
    expect(celsius(null)).toBe("N/A");
    expect(memory(null, null)).toBe("N/A");
    expect(power(null, 300000)).toBe("N/A");
    expect(memPct(1, 0)).toBeNull();
  });
  it("formats readings", () => {
    expect(pct(37.4)).toBe("37%");
    expect(memory(2 ** 30, 80 * 2 ** 30)).toBe("1.0 / 80.0 GiB");
    expect(power(120400, 400000)).toBe("120 / 400 W");
    expect(power(120400, null)).toBe("120 W");
  });
});

describe("history", () => {
  const snap = (atMs: number, util: number): GpuSnapshot => ({
    atMs,
    nvml: { state: "ok" },
    driverVersion: null,
    cudaDriverVersion: null,
    gpus: [
      {
        index: 0, uuid: "GPU-0", name: "x", computeCapability: null, memoryUsedBytes: 25, memoryTotalBytes: 100,
        utilizationGpuPct: util, utilizationMemoryPct: null, temperatureC: null, powerDrawMw: 1500, powerLimitMw: null,
        fanPct: null, clockGraphicsMhz: null, clockSmMhz: null, clockMemoryMhz: null, processes: [], heldBy: [],
      },
    ],
  });
  it("appends points and forgets those older than 10 minutes", () => {
    let h = {};
    h = appendPoint(h, snap(0, 1));
    h = appendPoint(h, snap(1000, 2));
    h = appendPoint(h, snap(WINDOW_MS + 500, 3));
    const pts = (h as Record<number, { utilizationGpuPct: number | null; memoryPct: number | null }[]>)[0]!;
    expect(pts.map((p) => p.utilizationGpuPct)).toEqual([2, 3]);
    expect(pts[0]!.memoryPct).toBe(25);
  });
});

describe("when", () => {
  it("writes a moment in the UI's language, whatever the system's", () => {
    const at = Date.UTC(2026, 11, 4, 5, 1, 2) / 1000;
    expect(when(at, "zh-CN")).toBe(new Date(at * 1000).toLocaleString("zh-CN"));
    expect(when(at, "en")).toBe(new Date(at * 1000).toLocaleString("en"));
    expect(when(at, "zh-CN")).not.toBe(when(at, "en"));
    expect(when(new Date(at * 1000).toISOString(), "en")).toBe(when(at, "en"));
  });
  it("says — for a moment it does not have", () => {
    expect(when(null, "en")).toBe("—");
    expect(when("", "en")).toBe("—");
    expect(when("not a date", "zh-CN")).toBe("—");
  });
});
