import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload } from "../api";
import type { VolumeInfo } from "../bindings/VolumeInfo";
import type { VolumeVersion } from "../bindings/VolumeVersion";
import { OperationStatus, type Outcome } from "../components/Busy";
import { ConfirmButton } from "../components/Confirm";
import { bytesBoth, when } from "../format";

const NAME_RE = /^[a-z0-9][a-z0-9_.]{0,39}$/;

export function VolumesPage() {
  const { t } = useTranslation();
  const [list, setList] = useState<VolumeInfo[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome>({ busy: null, done: null, error: null });
  const refresh = useCallback(() => {
    api.volList().then(setList).catch((e) => {
      setList([]);
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    });
  }, []);
  useEffect(() => {
    refresh();
    const un = api.onContainersChanged(refresh);
    return () => void un.then((f) => f());
  }, [refresh]);
  const run = async (label: () => string, f: () => Promise<unknown>, done: () => string) => {
    setOutcome({ busy: label, done: null, error: null });
    try {
      await f();
      setOutcome({ busy: null, done, error: null });
    } catch (e) {
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    }
    refresh();
  };
  const busy = outcome.busy !== null;
  const current = list?.find((v) => v.name === selected) ?? null;

  return (
    <section className="page" aria-labelledby="vol-title">
      <header className="page-head">
        <h1 id="vol-title">{t("vol.title")}</h1>
        <span className="muted small">{t("vol.units")}</span>
      </header>
      <CreateVolume busy={busy} onCreate={(name, size) => run(() => t("vol.creating", { name }), () => api.volCreate(name, size), () => t("vol.created", { name }))} />
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome({ busy: null, done: null, error: null })} />
      {list === null ? (
        <p className="muted">{t("common.loading")}</p>
      ) : list.length === 0 ? (
        <p className="empty">{t("vol.empty")}</p>
      ) : (
        <table className="table" data-testid="vol-table">
          <thead>
            <tr>
              <th>{t("vol.name")}</th>
              <th>{t("vol.owner")}</th>
              <th>{t("vol.bindAs")}</th>
              <th>{t("vol.size")}</th>
              <th>{t("vol.limitCol")}</th>
              <th>{t("vol.used")}</th>
              <th>{t("vol.users")}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((v) => {
              const pct = v.usedBytes == null ? 0 : Math.min(100, (v.usedBytes * 100) / v.sizeBytes);
              return (
                <tr key={v.name} data-testid={`vol-row-${v.name}`} className={v.name === selected ? "selected" : undefined} tabIndex={0} onClick={() => setSelected(v.name)} onKeyDown={(e) => e.key === "Enter" && setSelected(v.name)}>
                  <td>
                    <strong>{v.name}</strong>
                  </td>
                  <td data-testid="vol-owner">{v.owner ?? "—"}</td>
                  <td className="mono small">{v.dockerName}</td>
                  <td data-testid="vol-size">{bytesBoth(v.sizeBytes)}</td>
                  <td className="small" data-testid="vol-kind">
                    {t(`vol.kind.${v.backend}`, { defaultValue: v.backend })}
                  </td>
                  <td>
                    <span className="small">{bytesBoth(v.usedBytes)}</span>
                    <div className="meter" aria-hidden="true">
                      <div style={{ width: `${pct}%` }} />
                    </div>
                  </td>
                  <td>{v.users.join(", ") || "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {current && (
        <VolumeDetail
          v={current}
          busy={busy}
          onResize={(size, move) => run(() => t("vol.resizing", { name: current.name }), () => api.volResize(current.name, size, move), () => t("vol.resized", { name: current.name }))}
          onDelete={() => run(() => t("vol.deleting", { name: current.name }), () => api.volDelete(current.name), () => t("vol.deleted", { name: current.name })).then(() => setSelected(null))}
        />
      )}
    </section>
  );
}

function CreateVolume({ onCreate, busy }: { onCreate: (name: string, size: string) => void; busy: boolean }) {
  const { t } = useTranslation();
  const [name, setName] = useState("");
  const [size, setSize] = useState("20GB");
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!NAME_RE.test(name)) return setProblem(t("rs.badName"));
    setProblem(null);
    onCreate(name, size);
  };
  return (
    <form className="actions wrap card" onSubmit={submit} data-testid="vol-form">
      <label className="inline">
        {t("vol.name")}
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder="datasets" data-testid="vol-form-name" />
      </label>
      <label className="inline">
        {t("vol.size")}
        <input value={size} onChange={(e) => setSize(e.target.value)} data-testid="vol-form-size" />
      </label>
      <button type="submit" className="primary" disabled={busy} data-testid="vol-form-submit">
        {t("vol.create")}
      </button>
      {problem && (
        <span className="error-box" role="alert">
          {problem}
        </span>
      )}
    </form>
  );
}

function VolumeDetail({ v, busy, onResize, onDelete }: { v: VolumeInfo; busy: boolean; onResize: (size: string, move: boolean) => void; onDelete: () => void }) {
  const { t, i18n } = useTranslation();
  const [history, setHistory] = useState<VolumeVersion[]>([]);
  const [size, setSize] = useState("");
  const [move, setMove] = useState(true);
  useEffect(() => {
    api.volHistory(v.name).then(setHistory).catch(() => setHistory([]));
  }, [v.name, v.version]);
  return (
    <article className="card detail" data-testid="vol-detail">
      <header className="page-head">
        <h2>
          {v.name} <span className="muted">· {v.dockerName}</span>
        </h2>
      </header>
      <p className="small muted" data-testid="vol-limit-kind">
        {t(`vol.limitKind.${v.backend}`, { defaultValue: v.backend })}
      </p>
      <div className="actions wrap">
        <label className="inline">
          {t("vol.newSize")}
          <input value={size} onChange={(e) => setSize(e.target.value)} placeholder="50GB" data-testid="vol-resize-size" />
        </label>
        <label className="inline">
          <input type="checkbox" checked={move} onChange={(e) => setMove(e.target.checked)} />
          {t("vol.moveUsers")}
        </label>
        <ConfirmButton label={t("vol.resize")} question={t("vol.confirmResize", { name: v.name, size })} disabled={busy || !size.trim()} onConfirm={() => onResize(size, move)} testid="vol-resize" />
        <ConfirmButton label={t("rs.action.delete")} question={t("vol.confirmDelete", { name: v.name })} danger disabled={busy} onConfirm={onDelete} testid="vol-delete" />
      </div>
      <h3>{t("rs.history")}</h3>
      <ol className="timeline" data-testid="vol-timeline">
        {[...history].reverse().map((h) => (
          <li key={h.version} className={h.version === v.version ? "current" : undefined} data-testid={`vol-version-${h.version}`}>
            <div>
              <strong>v{h.version}</strong> <span className="muted">{when(h.createdAt, i18n.language)}</span> · {t(`vol.op.${h.op}`)} · {bytesBoth(h.sizeBytes)} · {t(`vol.kind.${h.backend}`, { defaultValue: h.backend })}
              {h.retiredAt != null && <span className="muted"> · {t("vol.retired")}</span>}
            </div>
          </li>
        ))}
      </ol>
    </article>
  );
}
