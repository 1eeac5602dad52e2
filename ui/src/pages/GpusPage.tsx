import { useEffect, useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import type uPlot from "uplot";
import { api, toErrorPayload } from "../api";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import type { GpuReading } from "../bindings/GpuReading";
import type { GpuSnapshot } from "../bindings/GpuSnapshot";
import type { HistoryPoint } from "../bindings/HistoryPoint";
import { Chart } from "../components/Chart";
import { ErrorBox } from "../components/ErrorBox";
import { celsius, gib, memory, memPct, mhz, pct, power } from "../format";
import { appendPoint, type History } from "../history";
import { useSettings } from "../settings";

export function GpusPage() {
  const { t } = useTranslation();
  const [snap, setSnap] = useState<GpuSnapshot | null>(null);
  const [history, setHistory] = useState<History>({});
  const [error, setError] = useState<ErrorPayload | null>(null);

  useEffect(() => {
    let live = true;
    api
      .gpuHistory()
      .then((h) => live && setHistory((cur) => ({ ...h, ...cur })))
      .catch((e) => setError(toErrorPayload(e)));
    const sub = api.gpuSubscribe((s) => {
      if (!live) return;
      setSnap(s);
      setHistory((h) => appendPoint(h, s));
    });
    sub.catch((e) => setError(toErrorPayload(e)));
    return () => {
      live = false;
      void sub.then((id) => api.gpuUnsubscribe(id)).catch(() => {});
    };
  }, []);

  return (
    <section className="page" aria-labelledby="gpus-title">
      <header className="page-head">
        <h1 id="gpus-title">{t("gpus.title")}</h1>
        {snap?.nvml.state === "ok" && (
          <span className="muted" data-testid="gpu-summary">
            {t("gpus.summary", {
              count: snap.gpus.length,
              driver: snap.driverVersion ?? t("common.na"),
              cuda: snap.cudaDriverVersion ?? t("common.na"),
            })}
          </span>
        )}
      </header>
      {error && <ErrorBox error={error} onDismiss={() => setError(null)} />}
      <GpuBody snap={snap} history={history} />
    </section>
  );
}

let readyReported = false;

function GpuBody({ snap, history }: { snap: GpuSnapshot | null; history: History }) {
  const { t } = useTranslation();
  const shown = snap !== null && !(snap.nvml.state === "unavailable" && snap.nvml.reason === "starting");
  useEffect(() => {
    if (shown && !readyReported) {
      readyReported = true;
      void api.uiReady();
    }
  }, [shown]);
  if (!snap || !shown) {
    return <p className="empty">{t("gpus.starting")}</p>;
  }
  if (snap.nvml.state === "unavailable") {
    return (
      <div className="empty-state" data-testid="no-driver">
        <h2>{t("gpus.noDriverTitle")}</h2>
        <p>{t("gpus.noDriverBody", { reason: snap.nvml.reason })}</p>
      </div>
    );
  }
  if (snap.gpus.length === 0) return <p className="empty">{t("gpus.noGpus")}</p>;
  return (
    <div className="gpu-grid">
      {snap.gpus.map((g) => (
        <GpuCard key={g.uuid ?? g.index} gpu={g} points={history[g.index] ?? []} />
      ))}
    </div>
  );
}

function GpuCard({ gpu: g, points }: { gpu: GpuReading; points: HistoryPoint[] }) {
  const { t } = useTranslation();
  const theme = useSettings().settings?.theme ?? "system";
  const na = t("common.na");
  const series = useMemo(
    () => [
      { label: t("gpus.chartLegendUtil"), color: "--accent" },
      { label: t("gpus.chartLegendMem"), color: "--accent2" },
    ],
    [t],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [
      points.map((p) => p.atMs / 1000),
      points.map((p) => p.utilizationGpuPct),
      points.map((p) => p.memoryPct),
    ],
    [points],
  );
  const mp = memPct(g.memoryUsedBytes, g.memoryTotalBytes);
  const v = (s: string) => s.replace("N/A", na);
  return (
    <article className="card gpu-card" data-testid="gpu-card" data-index={g.index}>
      <header>
        <span className="gpu-index">#{g.index}</span>
        <h2 data-testid="gpu-name">{g.name ?? na}</h2>
      </header>
      <div className="held">
        <span className="muted">{t("gpus.heldBy")}:</span>{" "}
        {g.heldBy.length === 0 ? (
          <span className="chip free">{t("gpus.free")}</span>
        ) : (
          g.heldBy.map((c) => (
            <span className="chip" key={c.id} title={c.id}>
              {c.replicaset ? `${c.replicaset} · ${c.name}` : c.name || c.id.slice(0, 12)}
            </span>
          ))
        )}
      </div>
      <dl className="metrics">
        <div>
          <dt>{t("gpus.utilization")}</dt>
          <dd data-testid="gpu-util">{v(pct(g.utilizationGpuPct))}</dd>
          <Meter value={g.utilizationGpuPct} />
        </div>
        <div>
          <dt>{t("gpus.memory")}</dt>
          <dd data-testid="gpu-mem">{v(memory(g.memoryUsedBytes, g.memoryTotalBytes))}</dd>
          <Meter value={mp} />
        </div>
        <div>
          <dt>{t("gpus.temperature")}</dt>
          <dd data-testid="gpu-temp">{v(celsius(g.temperatureC))}</dd>
        </div>
        <div>
          <dt>{t("gpus.power")}</dt>
          <dd data-testid="gpu-power">{v(power(g.powerDrawMw, g.powerLimitMw))}</dd>
        </div>
        <div>
          <dt>{t("gpus.fan")}</dt>
          <dd>{v(pct(g.fanPct))}</dd>
        </div>
        <div>
          <dt>{t("gpus.memoryUtil")}</dt>
          <dd>{v(pct(g.utilizationMemoryPct))}</dd>
        </div>
      </dl>
      <div className="chart-box">
        <span className="muted small">{t("gpus.chartTitle")}</span>
        <Chart data={data} series={series} theme={theme} />
      </div>
      <dl className="facts small">
        <div>
          <dt>{t("gpus.clocks")}</dt>
          <dd>
            {v(mhz(g.clockGraphicsMhz))} / {v(mhz(g.clockSmMhz))} / {v(mhz(g.clockMemoryMhz))}
          </dd>
        </div>
        <div>
          <dt>{t("gpus.computeCapability")}</dt>
          <dd>{g.computeCapability ?? na}</dd>
        </div>
        <div>
          <dt>{t("gpus.uuid")}</dt>
          <dd className="mono">{g.uuid ?? na}</dd>
        </div>
      </dl>
      <Processes gpu={g} />
    </article>
  );
}

function Meter({ value }: { value: number | null }) {
  return (
    <div className="meter" aria-hidden="true">
      <div style={{ width: `${Math.min(100, Math.max(0, value ?? 0))}%` }} />
    </div>
  );
}

function Processes({ gpu }: { gpu: GpuReading }) {
  const { t } = useTranslation();
  if (gpu.processes === null) return <p className="muted small">{t("gpus.processesUnavailable")}</p>;
  if (gpu.processes.length === 0) return <p className="muted small">{t("gpus.noProcesses")}</p>;
  return (
    <table className="procs small">
      <caption>{t("gpus.processes")}</caption>
      <thead>
        <tr>
          <th>{t("gpus.pid")}</th>
          <th>{t("gpus.gpuMemory")}</th>
          <th>{t("gpus.container")}</th>
        </tr>
      </thead>
      <tbody>
        {gpu.processes.map((p) => (
          <tr key={p.pid}>
            <td>{p.pid}</td>
            <td>{p.usedMemoryBytes == null ? t("common.na") : `${gib(p.usedMemoryBytes)} GiB`}</td>
            <td>
              {p.container ? (p.container.replicaset ?? p.container.name) || p.container.id.slice(0, 12) : <i>{t("gpus.host")}</i>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
