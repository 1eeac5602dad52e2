import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload } from "../api";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import type { PortMap } from "../bindings/PortMap";
import { ErrorBox } from "../components/ErrorBox";

const BUCKETS = 64;

/** The whole host port range at a glance: a strip of buckets (darker = more used), then the list. */
export function PortsPage() {
  const { t } = useTranslation();
  const [map, setMap] = useState<PortMap | null>(null);
  const [error, setError] = useState<ErrorPayload | null>(null);
  useEffect(() => {
    const load = () => api.portsMap().then(setMap).catch((e) => setError(toErrorPayload(e)));
    load();
    const un = api.onContainersChanged(load);
    const timer = setInterval(load, 10000); // host processes come and go without an event
    return () => {
      clearInterval(timer);
      void un.then((f) => f());
    };
  }, []);
  const span = map ? map.end - map.start + 1 : 1;
  const counts = new Array<number>(BUCKETS).fill(0);
  for (const u of map?.used ?? []) counts[Math.min(BUCKETS - 1, Math.floor(((u.port - (map?.start ?? 0)) * BUCKETS) / span))]! += 1;
  return (
    <section className="page" aria-labelledby="ports-title">
      <header className="page-head">
        <h1 id="ports-title">{t("ports.title")}</h1>
        {map && (
          <span className="muted" data-testid="ports-summary">
            {t("ports.summary", { start: map.start, end: map.end, used: map.used.length, free: map.free })}
          </span>
        )}
      </header>
      {error && <ErrorBox error={error} onDismiss={() => setError(null)} />}
      {map && (
        <>
          <div className="strip" aria-hidden="true">
            {counts.map((c, i) => (
              <div key={i} className={c ? "on" : undefined} style={{ opacity: c ? Math.min(1, 0.35 + c / 4) : 1 }} />
            ))}
          </div>
          {map.used.length === 0 ? (
            <p className="empty">{t("ports.none")}</p>
          ) : (
            <table className="table" data-testid="ports-table">
              <thead>
                <tr>
                  <th>{t("ports.port")}</th>
                  <th>{t("ports.kind")}</th>
                  <th>{t("ports.owner")}</th>
                </tr>
              </thead>
              <tbody>
                {map.used.map((u) => (
                  <tr key={u.port} data-testid={`port-${u.port}`}>
                    <td className="mono">{u.port}</td>
                    <td>{t(`ports.kinds.${u.kind}`)}</td>
                    <td>{u.kind === "host" ? "—" : u.owner}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
