import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload, type PolicyField, type PolicyView } from "../api";
import type { AuditEntry } from "../bindings/AuditEntry";
import type { Caller } from "../bindings/Caller";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import { ErrorBox } from "../components/ErrorBox";
import { bytesBoth, when } from "../format";

/** Who you are, your limits; for admins every user's limits (editable) and the audit. */
export function UsersPage() {
  const { t, i18n } = useTranslation();
  const [me, setMe] = useState<Caller | null>(null);
  const [view, setView] = useState<PolicyView | null>(null);
  const [audit, setAudit] = useState<AuditEntry[]>([]);
  const [error, setError] = useState<ErrorPayload | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [user, setUser] = useState("");
  const [maxGpus, setMaxGpus] = useState("");
  const [roots, setRoots] = useState("");
  const [root, setRoot] = useState<"" | "yes" | "no">("");
  const [volQuota, setVolQuota] = useState("");
  const [memory, setMemory] = useState("");
  const [cpus, setCpus] = useState("");
  const admin = me?.role === "admin";

  const load = useCallback(() => {
    api.whoami().then(setMe, (e) => setError(toErrorPayload(e)));
    api.policyGet().then(setView, (e) => setError(toErrorPayload(e)));
  }, []);
  useEffect(load, [load]);
  useEffect(() => {
    if (admin) api.audit().then(setAudit, () => setAudit([]));
  }, [admin, view]);

  const pick = (u: string) => {
    const row = view?.rows.find((r) => r.user === u);
    setUser(u);
    setMaxGpus(row?.maxGpus == null ? "" : String(row.maxGpus));
    setRoots(row?.bindRoots?.join(", ") ?? "");
    setRoot(row?.rootInContainer == null ? "" : row.rootInContainer ? "yes" : "no");
    setVolQuota(row?.maxVolumeBytes == null ? "" : String(row.maxVolumeBytes));
    setMemory(row?.memoryBytes == null ? "" : String(row.memoryBytes));
    setCpus(row?.cpusMilli == null ? "" : String(row.cpusMilli / 1000));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    const clear: PolicyField[] = [];
    if (volQuota.trim() === "") clear.push("maxVolumeBytes");
    if (memory.trim() === "") clear.push("memoryBytes");
    if (cpus.trim() === "") clear.push("cpusMilli");
    if (maxGpus.trim() === "") clear.push("maxGpus");
    const rootList = roots
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean);
    if (rootList.length === 0) clear.push("bindRoots");
    if (root === "") clear.push("rootInContainer");
    try {
      const n = Number(maxGpus);
      if (maxGpus.trim() !== "" && (!Number.isInteger(n) || n < 0)) {
        throw { code: "invalid_input", message: t("users.badGpus", { value: maxGpus }) };
      }
      const c = Number(cpus);
      if (cpus.trim() !== "" && !(c > 0)) {
        throw { code: "invalid_input", message: t("users.badCpus", { value: cpus }) };
      }
      await api.policySet(user.trim(), {
        maxGpus: maxGpus.trim() === "" ? null : n,
        bindRoots: rootList.length ? rootList : null,
        rootInContainer: root === "" ? null : root === "yes",
        maxVolumeSize: volQuota.trim() === "" ? null : volQuota.trim(),
        memory: memory.trim() === "" ? null : memory.trim(),
        cpus: cpus.trim() === "" ? null : c,
        clear,
      });
      setSaved(user.trim());
      load();
    } catch (err) {
      setError(toErrorPayload(err));
    }
  };

  const you = view?.you;
  return (
    <section className="page" aria-labelledby="users-title">
      <header className="page-head">
        <h1 id="users-title">{t("users.title")}</h1>
      </header>
      {me && (
        <p data-testid="users-you">
          {t("users.you", { user: me.user, role: t(`users.role.${me.role}`) })}{" "}
          {you &&
            !admin &&
            t("users.yourLimits", {
              gpus: you.maxGpus == null ? t("users.noGpuLimit") : t("users.gpuLimit", { n: you.maxGpus }),
              roots: you.bindRoots.join(", "),
              asRoot: you.rootInContainer ? t("users.asRoot") : t("users.asYou"),
            })}
          {you && !admin && " " + t("users.yourResources", {
            volumes: you.maxVolumeBytes == null ? t("users.unlimited") : bytesBoth(you.maxVolumeBytes),
            memory: you.memoryBytes == null ? t("users.unlimited") : bytesBoth(you.memoryBytes),
            cpus: you.cpusMilli == null ? t("users.unlimited") : String(you.cpusMilli / 1000),
          })}
        </p>
      )}
      {error && <ErrorBox error={error} onDismiss={() => setError(null)} />}
      {saved && (
        <p className="ok" role="status">
          {t("users.saved", { user: saved === "*" ? t("users.default") : saved })}
        </p>
      )}
      {view && view.rows.length > 0 && (
        <table className="table" data-testid="policy-table">
          <thead>
            <tr>
              <th>{t("users.user")}</th>
              <th>{t("users.maxGpus")}</th>
              <th>{t("users.bindRoots")}</th>
              <th>{t("users.rootInContainer")}</th>
              <th>{t("users.volQuota")}</th>
              <th>{t("users.memory")}</th>
              <th>{t("users.cpus")}</th>
            </tr>
          </thead>
          <tbody>
            {view.rows.map((r) => (
              <tr key={r.user} tabIndex={admin ? 0 : undefined} onClick={() => admin && pick(r.user)} onKeyDown={(e) => admin && e.key === "Enter" && pick(r.user)}>
                <td>{r.user === "*" ? t("users.default") : r.user}</td>
                <td>{r.maxGpus ?? t("users.inherit")}</td>
                <td className="mono small">{r.bindRoots?.join(", ") ?? t("users.inherit")}</td>
                <td>
                  {r.rootInContainer == null ? t("users.inherit") : r.rootInContainer ? <span className="warn-text" title={t("users.rootWarning")}>{t("common.yes")} ⚠</span> : "—"}
                </td>
                <td>{r.maxVolumeBytes == null ? t("users.inherit") : bytesBoth(r.maxVolumeBytes)}</td>
                <td>{r.memoryBytes == null ? t("users.inherit") : bytesBoth(r.memoryBytes)}</td>
                <td>{r.cpusMilli == null ? t("users.inherit") : r.cpusMilli / 1000}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {admin ? (
        <form className="form" onSubmit={submit} data-testid="policy-form">
          <label>
            {t("users.user")}
            <input value={user} onChange={(e) => setUser(e.target.value)} placeholder={t("users.userPlaceholder")} required data-testid="policy-user" />
          </label>
          <label>
            {t("users.maxGpus")}
            <input value={maxGpus} onChange={(e) => setMaxGpus(e.target.value)} inputMode="numeric" placeholder={t("users.inherit")} data-testid="policy-max-gpus" />
          </label>
          <label>
            {t("users.bindRoots")}
            <input value={roots} onChange={(e) => setRoots(e.target.value)} placeholder={t("users.rootsPlaceholder")} data-testid="policy-roots" />
          </label>
          <label>
            {t("users.rootInContainer")}
            <select value={root} onChange={(e) => setRoot(e.target.value as "" | "yes" | "no")} data-testid="policy-root">
              <option value="">{t("users.inherit")}</option>
              <option value="no">—</option>
              <option value="yes">{t("common.yes")}</option>
            </select>
          </label>
          {root === "yes" && <p className="warn-text small">{t("users.rootWarning")}</p>}
          <label>
            {t("users.volQuota")}
            <input value={volQuota} onChange={(e) => setVolQuota(e.target.value)} placeholder={t("users.sizePlaceholder")} data-testid="policy-vol-quota" />
          </label>
          <label>
            {t("users.memory")}
            <input value={memory} onChange={(e) => setMemory(e.target.value)} placeholder={t("users.sizePlaceholder")} data-testid="policy-memory" />
          </label>
          <label>
            {t("users.cpus")}
            <input value={cpus} onChange={(e) => setCpus(e.target.value)} inputMode="decimal" placeholder={t("users.inherit")} data-testid="policy-cpus" />
          </label>
          <button type="submit" data-testid="policy-save">
            {t("users.save")}
          </button>
        </form>
      ) : (
        me && <p className="small">{t("users.onlyAdmins")}</p>
      )}
      {admin && (
        <>
          <h2>{t("users.audit")}</h2>
          {audit.length === 0 ? (
            <p className="small">{t("users.auditEmpty")}</p>
          ) : (
            <table className="table" data-testid="audit-table">
              <thead>
                <tr>
                  <th>{t("users.when")}</th>
                  <th>{t("users.user")}</th>
                  <th>{t("users.action")}</th>
                  <th>{t("users.outcome")}</th>
                </tr>
              </thead>
              <tbody>
                {audit.slice(0, 50).map((a, i) => (
                  <tr key={i}>
                    <td className="small">{when(a.at, i18n.language)}</td>
                    <td>{a.user}</td>
                    <td className="mono small">{a.action}</td>
                    <td>{a.outcome}</td>
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
