import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { api } from "../api";
import type { DoctorCheck } from "../bindings/DoctorCheck";
import { bytesBoth } from "../format";

export function SystemPage() {
  const { t } = useTranslation();
  const [checks, setChecks] = useState<DoctorCheck[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [files, setFiles] = useState<number | null>(null);
  const run = useCallback(() => {
    setBusy(true);
    api
      .rsFilesBytes()
      .then(setFiles)
      .catch(() => setFiles(null));
    api
      .doctor()
      .then(setChecks)
      .finally(() => setBusy(false));
  }, []);
  useEffect(run, [run]);
  return (
    <section className="page" aria-labelledby="system-title">
      <header className="page-head">
        <h1 id="system-title">{t("system.title")}</h1>
        <button type="button" onClick={run} disabled={busy}>
          {busy ? t("system.running") : t("system.run")}
        </button>
      </header>
      <p className="muted">{t("system.intro")}</p>
      {files != null && (
        <p className="small" data-testid="version-files-total">
          {t("system.versionFiles", { size: bytesBoth(files) })}
        </p>
      )}
      {busy && !checks && <div className="progress indeterminate" role="progressbar" aria-label={t("system.running")} />}
      <ul className="checks">
        {(checks ?? []).map((c) => (
          <li key={c.id} className={`card check ${c.status}`} data-testid={`check-${c.id}`}>
            <span className={`badge ${c.status}`}>{t(`system.status.${c.status}`)}</span>
            <div>
              <strong>{t(`system.check.${c.id}`, { defaultValue: c.id })}</strong>
              <p className="mono small">{c.summary}</p>
              {c.fix && (
                <p className="small">
                  {t("system.fix")}: <code>{c.fix}</code>
                </p>
              )}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
