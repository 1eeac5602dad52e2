import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api";
import type { JobView } from "../bindings/JobView";
import { bytesBoth } from "../format";
import { addSample, duration, etaSeconds, mergeJob, percent, type Sample } from "../jobs";
import { ErrorBox } from "./ErrorBox";

/**
 * The tray of pulls and pushes: every job of this user the service keeps, with an overall bar
 * (ETA) and a bar per layer, live; still there after the user leaves a page and comes back.
 */
export function JobsTray() {
  const { t } = useTranslation();
  const [jobs, setJobs] = useState<JobView[]>([]);
  const [hidden, setHidden] = useState<Set<number>>(new Set());
  const samples = useRef(new Map<number, Sample[]>());
  useEffect(() => {
    const take = (j: JobView) => {
      samples.current.set(j.id, addSample(samples.current.get(j.id) ?? [], { at: Date.now(), current: j.progress.current }));
      setJobs((l) => mergeJob(l, j));
    };
    void api.jobList().then((l) => l.forEach(take)).catch(() => undefined);
    const un = api.onJob(take);
    return () => void un.then((f) => f());
  }, []);
  const shown = jobs.filter((j) => !hidden.has(j.id));
  if (shown.length === 0) return null;
  return (
    <aside className="jobs-tray card" aria-label={t("jobs.title")} data-testid="jobs-tray">
      <header className="page-head">
        <h2 className="small">{t("jobs.title")}</h2>
      </header>
      {shown.map((j) => (
        <JobRow key={j.id} j={j} samples={samples.current.get(j.id) ?? []} onHide={() => setHidden((h) => new Set(h).add(j.id))} />
      ))}
    </aside>
  );
}

function JobRow({ j, samples, onHide }: { j: JobView; samples: Sample[]; onHide: () => void }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(true);
  const pct = percent(j);
  const eta = j.state === "running" ? etaSeconds(samples, j.progress.total) : null;
  const done = j.progress.layers.filter((l) => l.done).length;
  return (
    <div className={`job job-${j.state}`} data-testid={`job-${j.id}`} data-state={j.state} data-kind={j.kind}>
      <div className="job-head">
        <button type="button" className="link" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "▾" : "▸"}
        </button>
        <strong>{t(`jobs.kind.${j.kind}`)}</strong> <span className="mono small">{j.image}</span>
        <span className="muted small" data-testid="job-phase">
          {" "}
          · {j.state === "running" ? t(`jobs.phase.${j.phase}`, { defaultValue: j.phase }) : t(`jobs.state.${j.state}`)}
        </span>
        {j.state === "running" ? (
          <button type="button" className="danger small push-right" data-testid="job-cancel" onClick={() => void api.jobCancel(j.id).catch(() => undefined)}>
            {t("common.cancel")}
          </button>
        ) : (
          <button type="button" className="link small push-right" onClick={onHide}>
            {t("common.dismiss")}
          </button>
        )}
      </div>
      <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-label={j.image} data-testid="job-bar">
        <div style={{ width: `${pct}%` }} />
      </div>
      <div className="small muted" data-testid="job-summary">
        {/* A pull of an image whose every blob the engine had (the containerd store keeps them): no layer moved. */}
        {j.state === "done" && j.progress.layers.length === 0
          ? t("jobs.allHere")
          : t("jobs.summary", { pct, done, all: j.progress.layers.length, bytes: bytesBoth(j.progress.current), total: bytesBoth(j.progress.total) })}
        {eta != null && ` · ${t("jobs.eta", { eta: duration(eta) })}`}
        {j.digest && <span className="mono"> · {j.digest}</span>}
      </div>
      {j.error && j.state !== "cancelled" && <ErrorBox error={j.error} />}
      {open && j.progress.layers.length > 0 && (
        <table className="table layers" data-testid="job-layers">
          <tbody>
            {j.progress.layers.map((l) => {
              const lp = l.done ? 100 : l.total ? Math.min(100, Math.floor((l.current * 100) / l.total)) : 0;
              return (
                <tr key={l.id} data-testid="job-layer">
                  <td className="mono small">{l.id.replace("sha256:", "").slice(0, 12)}</td>
                  <td className="small">{t(`jobs.layer.${l.status.split(" ")[0]}`, { defaultValue: l.status })}</td>
                  <td className="layer-bar">
                    <div className="progress thin" role="progressbar" aria-valuenow={lp} aria-valuemin={0} aria-valuemax={100}>
                      <div style={{ width: `${lp}%` }} />
                    </div>
                  </td>
                  <td className="small muted">{l.total ? `${bytesBoth(l.current)} / ${bytesBoth(l.total)}` : ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
