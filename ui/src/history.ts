import type { GpuSnapshot } from "./bindings/GpuSnapshot";
import type { HistoryPoint } from "./bindings/HistoryPoint";
import { memPct } from "./format";

/** Chart points by GPU index, the last 10 minutes. */
export type History = Record<number, HistoryPoint[]>;

export const WINDOW_MS = 10 * 60 * 1000;

/** Adds a snapshot's readings to the history (a new object; old points past the window drop). */
export function appendPoint(h: History, s: GpuSnapshot): History {
  if (s.nvml.state !== "ok") return h;
  const out: History = {};
  const horizon = s.atMs - WINDOW_MS;
  for (const g of s.gpus) {
    const prev = (h[g.index] ?? []).filter((p) => p.atMs >= horizon && p.atMs < s.atMs);
    prev.push({
      atMs: s.atMs,
      utilizationGpuPct: g.utilizationGpuPct,
      memoryPct: memPct(g.memoryUsedBytes, g.memoryTotalBytes),
      temperatureC: g.temperatureC,
      powerDrawW: g.powerDrawMw == null ? null : g.powerDrawMw / 1000,
    });
    out[g.index] = prev;
  }
  return out;
}
