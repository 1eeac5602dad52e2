// Pure formatting helpers; "N/A" for anything the driver did not report.
export const NA = "N/A";

export function pct(v: number | null | undefined): string {
  return v == null ? NA : `${Math.round(v)}%`;
}

export function gib(bytes: number | null | undefined): string {
  return bytes == null ? NA : (bytes / 2 ** 30).toFixed(1);
}

export function memory(used: number | null, total: number | null): string {
  if (used == null && total == null) return NA;
  return `${gib(used)} / ${gib(total)} GiB`;
}

export function watts(mw: number | null | undefined): string {
  return mw == null ? NA : `${Math.round(mw / 1000)} W`;
}

export function power(draw: number | null, limit: number | null): string {
  if (draw == null) return NA;
  return limit == null ? watts(draw) : `${Math.round(draw / 1000)} / ${watts(limit)}`;
}

export function celsius(v: number | null | undefined): string {
  return v == null ? NA : `${v} °C`;
}

export function mhz(v: number | null | undefined): string {
  return v == null ? NA : `${v} MHz`;
}

export function memPct(used: number | null, total: number | null): number | null {
  return used == null || total == null || total === 0 ? null : (used * 100) / total;
}

/** `20.0 MB (19.1 MiB)`: decimal, then binary, as the Rust side words it. */
export function bytesBoth(bytes: number | null | undefined): string {
  if (bytes == null) return NA;
  const dec: [number, string][] = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "KB"]];
  const bin: [number, string][] = [[2 ** 40, "TiB"], [2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]];
  const pick = (t: [number, string][]) => {
    const u = t.find(([f]) => bytes >= f);
    return u ? `${(bytes / u[0]).toFixed(1)} ${u[1]}` : `${bytes} B`;
  };
  return `${pick(dec)} (${pick(bin)})`;
}

/**
 * A moment in the UI's language, not the system's (the app switches language live): unix seconds
 * or an ISO string; "—" when absent or unreadable.
 */
export function when(at: number | string | null | undefined, lang: string): string {
  if (at == null || at === "") return "—";
  const d = typeof at === "number" ? new Date(at * 1000) : new Date(at);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString(lang);
}
