// Pure helpers for the tray of pull and push jobs: merging updates, rates and ETA.
import type { JobView } from "./bindings/JobView";

/** The list with `j` put in place of the job of its id (or first, when new); newest first. */
export function mergeJob(list: JobView[], j: JobView): JobView[] {
  const i = list.findIndex((x) => x.id === j.id);
  if (i < 0) return [j, ...list].sort((a, b) => b.id - a.id);
  const out = list.slice();
  out[i] = j;
  return out;
}

export type Sample = { at: number; current: number };

/** Keeps the samples of the last `windowMs` (at least two), for the rate. */
export function addSample(samples: Sample[], s: Sample, windowMs = 10_000): Sample[] {
  const out = [...samples, s];
  while (out.length > 2 && s.at - (out[0]?.at ?? s.at) > windowMs) out.shift();
  return out;
}

/** Bytes a second over the samples; null until it can be told. */
export function rate(samples: Sample[]): number | null {
  const a = samples[0];
  const b = samples[samples.length - 1];
  if (samples.length < 2 || !a || !b) return null;
  const dt = (b.at - a.at) / 1000;
  if (dt <= 0 || b.current <= a.current) return null;
  return (b.current - a.current) / dt;
}

/** Seconds left at the current rate; null when unknown. */
export function etaSeconds(samples: Sample[], total: number): number | null {
  const r = rate(samples);
  const last = samples[samples.length - 1];
  if (r == null || !last || total <= 0) return null;
  return Math.max(0, Math.round((total - last.current) / r));
}

/** `1:05`, `12 s`. */
export function duration(s: number): string {
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = String(s % 60).padStart(2, "0");
  return m < 60 ? `${m}:${rest}` : `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${rest}`;
}

/** Percent done of a job's overall bar (0 when nothing is known yet). */
export function percent(j: JobView): number {
  if (j.state === "done") return 100;
  const { current, total } = j.progress;
  return total > 0 ? Math.min(100, Math.floor((current * 100) / total)) : 0;
}
