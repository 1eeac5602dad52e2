import { describe, expect, it } from "vitest";
import type { JobView } from "./bindings/JobView";
import { addSample, duration, etaSeconds, mergeJob, percent, rate } from "./jobs";

const job = (id: number, current = 0, total = 0, state: JobView["state"] = "running"): JobView => ({
  id,
  kind: "pull",
  image: "img:1",
  owner: "alice",
  uid: 1000,
  state,
  phase: "pull",
  progress: { direction: "pull", layers: [], current, total, message: "", digest: null },
  digest: null,
  error: null,
  startedMs: 0,
  endedMs: null,
});

describe("jobs", () => {
  it("merges updates in place and new jobs first", () => {
    let l = mergeJob([], job(1));
    l = mergeJob(l, job(2));
    expect(l.map((j) => j.id)).toEqual([2, 1]);
    l = mergeJob(l, job(1, 5, 10));
    expect(l.map((j) => j.id)).toEqual([2, 1]);
    expect(l[1]?.progress.current).toBe(5);
  });
  it("tells rate and ETA from samples in a window", () => {
    let s = addSample([], { at: 0, current: 0 });
    expect(rate(s)).toBeNull();
    s = addSample(s, { at: 1000, current: 100 });
    expect(rate(s)).toBe(100);
    expect(etaSeconds(s, 1100)).toBe(10);
    s = addSample(s, { at: 20_000, current: 2000 });
    expect(s.length).toBe(2);
    expect(etaSeconds(s, 0)).toBeNull();
  });
  it("formats durations and percents", () => {
    expect(duration(5)).toBe("5 s");
    expect(duration(65)).toBe("1:05");
    expect(duration(3725)).toBe("1:02:05");
    expect(percent(job(1, 50, 200))).toBe(25);
    expect(percent(job(1, 0, 0))).toBe(0);
    expect(percent(job(1, 0, 0, "done"))).toBe(100);
  });
});
