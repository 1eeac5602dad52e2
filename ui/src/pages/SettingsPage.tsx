import { useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { toErrorPayload } from "../api";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import type { Settings } from "../bindings/Settings";
import { ErrorBox } from "../components/ErrorBox";
import { LANGUAGES } from "../i18n";
import { useSettings } from "../settings";

export function SettingsPage() {
  const { t } = useTranslation();
  const { settings, save } = useSettings();
  const [draft, setDraft] = useState<Settings | null>(settings);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ErrorPayload | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setDraft(settings), [settings]);
  if (!draft) return null;

  const set = (patch: Partial<Settings>) => {
    setSaved(false);
    setDraft({ ...draft, ...patch });
  };
  const num = (s: string) => (s.trim() === "" ? NaN : Number(s));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await save(draft);
      setSaved(true);
    } catch (err) {
      setError(toErrorPayload(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="page" aria-labelledby="settings-title">
      <header className="page-head">
        <h1 id="settings-title">{t("settings.title")}</h1>
      </header>
      <form className="form card" onSubmit={submit}>
        <label>
          {t("settings.language")}
          <select
            data-testid="settings-language"
            value={draft.language}
            onChange={(e) => set({ language: e.target.value as Settings["language"] })}
          >
            {LANGUAGES.map((l) => (
              <option key={l.code} value={l.code}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("settings.theme")}
          <select value={draft.theme} onChange={(e) => set({ theme: e.target.value as Settings["theme"] })}>
            {(["system", "light", "dark"] as const).map((th) => (
              <option key={th} value={th}>
                {t(`settings.themes.${th}`)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("settings.interval")}
          <input
            type="number"
            min={250}
            max={60000}
            step={250}
            required
            value={Number.isNaN(draft.sampleIntervalMs) ? "" : draft.sampleIntervalMs}
            onChange={(e) => set({ sampleIntervalMs: num(e.target.value) })}
          />
          <small className="muted">{t("settings.intervalHelp")}</small>
        </label>
        <label>
          {t("settings.dockerEndpoint")}
          <input
            type="text"
            data-testid="settings-endpoint"
            placeholder="unix:///var/run/docker.sock"
            value={draft.dockerEndpoint ?? ""}
            onChange={(e) => set({ dockerEndpoint: e.target.value.trim() === "" ? null : e.target.value.trim() })}
          />
          <small className="muted">{t("settings.dockerEndpointHelp")}</small>
        </label>
        <fieldset>
          <legend>{t("settings.portRange")}</legend>
          <label>
            {t("settings.portStart")}
            <input
              type="number"
              min={1024}
              max={65535}
              required
              value={draft.portRange.start}
              onChange={(e) => set({ portRange: { ...draft.portRange, start: num(e.target.value) } })}
            />
          </label>
          <label>
            {t("settings.portEnd")}
            <input
              type="number"
              min={1024}
              max={65535}
              required
              value={draft.portRange.end}
              onChange={(e) => set({ portRange: { ...draft.portRange, end: num(e.target.value) } })}
            />
          </label>
        </fieldset>
        <label>
          {t("settings.stopTimeout")}
          <input
            type="number"
            min={0}
            max={240}
            required
            data-testid="settings-stop-timeout"
            value={Number.isNaN(draft.stopTimeoutS) ? "" : draft.stopTimeoutS}
            onChange={(e) => set({ stopTimeoutS: num(e.target.value) })}
          />
          <small className="muted">{t("settings.stopTimeoutHelp")}</small>
        </label>
        <label>
          {t("settings.publishAddress")}
          <input
            type="text"
            data-testid="settings-publish-address"
            placeholder="0.0.0.0"
            value={draft.publishAddress ?? ""}
            onChange={(e) => set({ publishAddress: e.target.value.trim() === "" ? null : e.target.value.trim() })}
          />
          <small className="muted">{t("settings.publishAddressHelp")}</small>
        </label>
        <label>
          {t("settings.keepVersions")}
          <input
            type="number"
            min={0}
            data-testid="settings-keep-versions"
            value={draft.keepVersions ?? ""}
            onChange={(e) => set({ keepVersions: e.target.value.trim() === "" ? null : num(e.target.value) })}
          />
          <small className="muted">{t("settings.keepVersionsHelp")}</small>
        </label>
        <label>
          {t("settings.gpuRequests")}
          <select
            data-testid="settings-gpu-requests"
            value={draft.gpuRequests}
            onChange={(e) => set({ gpuRequests: e.target.value as Settings["gpuRequests"] })}
          >
            {(["auto", "nvidia", "cdi"] as const).map((w) => (
              <option key={w} value={w}>
                {t(`settings.gpuRequestsWays.${w}`)}
              </option>
            ))}
          </select>
          <small className="muted">{t("settings.gpuRequestsHelp")}</small>
        </label>
        <label className="check-row">
          <input
            type="checkbox"
            data-testid="settings-system-binds"
            checked={draft.allowSystemBinds}
            onChange={(e) => set({ allowSystemBinds: e.target.checked })}
          />
          <span>
            {t("settings.systemBinds")}
            <small className="muted"> — {t("settings.systemBindsHelp")}</small>
          </span>
        </label>
        {error && <ErrorBox error={error} onDismiss={() => setError(null)} />}
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} data-testid="settings-save">
            {busy ? t("settings.saving") : t("settings.save")}
          </button>
          <button
            type="button"
            data-testid="settings-reset"
            onClick={() => {
              setDraft(settings);
              setError(null);
            }}
            disabled={busy}
          >
            {t("settings.reset")}
          </button>
          {saved && (
            <span className="ok-text" role="status">
              {t("settings.saved")}
            </span>
          )}
        </div>
      </form>
    </section>
  );
}
