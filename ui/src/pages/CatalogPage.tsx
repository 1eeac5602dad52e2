import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload } from "../api";
import type { CatalogItem } from "../bindings/CatalogItem";
import type { Caller } from "../bindings/Caller";
import type { ErrorPayload } from "../bindings/ErrorPayload";
import type { Param } from "../bindings/Param";
import type { Rendered } from "../bindings/Rendered";
import { OperationStatus, type Outcome } from "../components/Busy";
import { ConfirmButton } from "../components/Confirm";
import { ErrorBox } from "../components/ErrorBox";
import { initialValues, key, pick, problems, toSend } from "../catalog";

/** An entry's key for the service: its name and version (UFDL keys an image by both). */
const entryKey = (e: { name: string; version: string }) => `${e.name}@${e.version}`;

const IDLE: Outcome = { busy: null, done: null, error: null };

export function CatalogPage() {
  const { t, i18n } = useTranslation();
  const lang = i18n.language;
  const [list, setList] = useState<CatalogItem[] | null>(null);
  const [search, setSearch] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const [me, setMe] = useState<Caller | null>(null);
  const [outcome, setOutcome] = useState<Outcome>(IDLE);
  const refresh = useCallback(() => {
    // The search is a UFDL filter: the name contains the text, any case.
    const filter = search.trim()
      ? JSON.stringify({ expressions: [{ type: "or", sub_expressions: ["name", "display_name", "display_name_zh", "domain", "framework"].map((field) => ({ type: "contains", field, value: search.trim(), case_insensitive: true })) }], order_by: [{ field: "name" }] })
      : null;
    api.catalogList(filter).then(setList).catch((e) => {
      setList([]);
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    });
  }, [search]);
  useEffect(() => {
    void api.whoami().then(setMe).catch(() => undefined);
  }, []);
  useEffect(refresh, [refresh]);
  const current = list?.find((i) => entryKey(i.record.entry) === selected) ?? null;
  const admin = me?.role === "admin";
  return (
    <section className="page" aria-labelledby="cat-title">
      <header className="page-head">
        <h1 id="cat-title">{t("cat.title")}</h1>
        <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder={t("cat.search")} aria-label={t("cat.search")} data-testid="cat-search" />
      </header>
      {admin && <ImportForm onDone={refresh} />}
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      {list === null ? (
        <p className="muted">{t("common.loading")}</p>
      ) : list.length === 0 ? (
        <p className="empty" data-testid="cat-empty">
          {admin ? t("cat.emptyAdmin") : t("cat.empty")}
        </p>
      ) : (
        <table className="table" data-testid="cat-table">
          <thead>
            <tr>
              <th>{t("cat.name")}</th>
              <th>{t("cat.image")}</th>
              <th>{t("cat.framework")}</th>
              <th>{t("cat.cuda")}</th>
              <th>{t("cat.here")}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((i) => {
              const e = i.record.entry;
              return (
                <tr key={entryKey(e)} className={entryKey(e) === selected ? "selected" : undefined} tabIndex={0} data-testid={`cat-row-${e.name}`} onClick={() => setSelected(entryKey(e))} onKeyDown={(ev) => ev.key === "Enter" && setSelected(entryKey(e))}>
                  <td>
                    <strong>{pick(e.displayName, lang, e.name)}</strong>
                    <div className="small muted">
                      {e.name} {e.version && `· ${e.version}`} {e.price > 0 && `· ${t("cat.price", { price: e.price })}`}
                    </div>
                  </td>
                  <td className="mono small">{e.image}</td>
                  <td className="small">{[e.framework, e.frameworkVersion].filter(Boolean).join(" ") || "—"}</td>
                  <td className="small">{e.cpuOnly ? t("cat.cpu") : e.cudaVersion ?? "—"}</td>
                  <td>
                    <span className={`badge badge-${i.compat.status}`} title={i.compat.reasons.join(" ")} data-testid="cat-badge">
                      {e.cpuOnly
                        ? t("cat.badge.cpu")
                        : i.compat.status !== "ok" && i.compat.status !== "busy" && i.compat.needsDriver
                          ? t("cat.badge.driver", { version: i.compat.needsDriver })
                          : t(`cat.badge.${i.compat.status}`)}
                    </span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {current && <LaunchForm key={`${current.record.entry.name}-${current.record.revision}`} item={current} admin={admin} onRemoved={() => { setSelected(null); refresh(); }} />}
    </section>
  );
}

function ImportForm({ onDone }: { onDone: () => void }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const [format, setFormat] = useState<"auto" | "gpudeck" | "argon" | "ufdl">("auto");
  const [text, setText] = useState("");
  const [outcome, setOutcome] = useState<Outcome>(IDLE);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setOutcome({ busy: () => t("cat.importing"), done: null, error: null });
    try {
      const r = await api.catalogImport(format, text);
      const added = r.flatMap((i) => i.fixes.addedParams);
      setOutcome({ busy: null, done: () => t("cat.imported", { names: r.map((i) => `${i.name} (r${i.revision})`).join(", ") }) + (added.length ? " " + t("cat.added", { params: added.join(", ") }) : ""), error: null });
      setText("");
      onDone();
    } catch (err) {
      setOutcome({ busy: null, done: null, error: toErrorPayload(err) });
    }
  };
  if (!open)
    return (
      <div className="actions">
        <button type="button" onClick={() => setOpen(true)} data-testid="cat-import-open">
          {t("cat.import")}
        </button>
      </div>
    );
  return (
    <form className="card" onSubmit={(e) => void submit(e)} data-testid="cat-import-form">
      <div className="actions wrap">
        <label className="inline">
          {t("cat.format")}
          <select value={format} onChange={(e) => setFormat(e.target.value as typeof format)} data-testid="cat-import-format">
            <option value="auto">{t("cat.formatAuto")}</option>
            <option value="gpudeck">GPU Deck (YAML / JSON)</option>
            <option value="argon">Argon</option>
            <option value="ufdl">UFDL</option>
          </select>
        </label>
        <span className="muted small">{t("cat.importHelp")}</span>
      </div>
      <textarea value={text} onChange={(e) => setText(e.target.value)} rows={10} className="mono small" style={{ width: "100%" }} aria-label={t("cat.import")} data-testid="cat-import-text" />
      <div className="actions">
        <button type="submit" className="primary" disabled={!text.trim()} data-testid="cat-import-submit">
          {t("cat.importSave")}
        </button>
        <button type="button" onClick={() => setOpen(false)}>
          {t("common.cancel")}
        </button>
      </div>
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
    </form>
  );
}

function ParamField({ p, value, onChange, problem }: { p: Param; value: string; onChange: (v: string) => void; problem: string | null }) {
  const { i18n } = useTranslation();
  const lang = i18n.language;
  const id = `cat-param-${key(p).replace(".", "-")}`;
  const label = pick(p.displayName, lang, p.name);
  const help = pick(p.help, lang);
  let control;
  if (p.type === "bool") {
    control = <input id={id} type="checkbox" checked={value === "true"} onChange={(e) => onChange(e.target.checked ? "true" : "false")} data-testid={id} />;
  } else if (p.type === "enum") {
    control = (
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} data-testid={id}>
        {!p.required && <option value="">—</option>}
        {(p.options ?? []).map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  } else {
    const type = p.type === "int" || p.type === "float" ? "number" : p.type === "secret" ? "password" : "text";
    control = <input id={id} type={type} value={value} min={p.min ?? undefined} max={p.max ?? undefined} step={p.type === "float" ? "any" : undefined} required={p.required} autoComplete={p.type === "secret" ? "new-password" : "off"} onChange={(e) => onChange(e.target.value)} data-testid={id} aria-invalid={problem != null} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>
        {label}
        {p.required && " *"} <span className="muted small mono">{`{{${key(p)}}}`}</span>
      </label>
      {control}
      {help && <div className="small muted">{help}</div>}
      {problem && (
        <div className="small error-text" role="alert">
          {problem}
        </div>
      )}
    </div>
  );
}

function LaunchForm({ item, admin, onRemoved }: { item: CatalogItem; admin: boolean; onRemoved: () => void }) {
  const { t, i18n } = useTranslation();
  const lang = i18n.language;
  const e = item.record.entry;
  const params = useMemo(() => [...e.params].sort((a, b) => a.index - b.index), [e.params]);
  const [values, setValues] = useState<Record<string, string>>(() => initialValues(params));
  const [rsName, setRsName] = useState("");
  const [gpus, setGpus] = useState(String(e.gpus.default));
  const [preview, setPreview] = useState<Rendered | null>(null);
  const [previewError, setPreviewError] = useState<ErrorPayload | null>(null);
  const [outcome, setOutcome] = useState<Outcome>(IDLE);
  const found = problems(params, values);
  const problemOf = (k: string) => {
    const p = found.find((x) => x.key === k);
    return p ? t(`cat.problem.${p.what}`) : null;
  };
  useEffect(() => {
    if (found.length) {
      setPreview(null);
      return;
    }
    const h = setTimeout(() => {
      api.catalogRender(entryKey(e), toSend(values)).then((r) => {
        setPreview(r);
        setPreviewError(null);
      }).catch((err) => {
        setPreview(null);
        setPreviewError(toErrorPayload(err));
      });
    }, 150);
    return () => clearTimeout(h);
  }, [entryKey(e), JSON.stringify(values), found.length]);
  const launch = async (ev: FormEvent) => {
    ev.preventDefault();
    if (found.length || !rsName.trim()) return;
    setOutcome({ busy: () => t("cat.launching", { name: rsName }), done: null, error: null });
    try {
      const info = await api.catalogLaunch(entryKey(e), rsName.trim(), Number(gpus), toSend(values));
      setOutcome({ busy: null, done: () => t("cat.launched", { container: info.container }), error: null });
    } catch (err) {
      setOutcome({ busy: null, done: null, error: toErrorPayload(err) });
    }
  };
  return (
    <article className="card detail" data-testid="cat-detail">
      <header className="page-head">
        <h2>{pick(e.displayName, lang, e.name)}</h2>
        <span className="muted small">
          {t("cat.revision", { n: item.record.revision })} · {e.image}
        </span>
      </header>
      {pick(e.description, lang) && <p>{pick(e.description, lang)}</p>}
      <div className="small" data-testid="cat-reasons">
        <strong>{e.cpuOnly ? t("cat.why.cpu") : t(`cat.why.${item.compat.status}`)}</strong>
        <details>
          <summary>{t("errors.details")}</summary>
          <ul>
            {item.compat.reasons.map((r) => (
              <li key={r}>{r}</li>
            ))}
          </ul>
        </details>
      </div>
      <form onSubmit={(ev) => void launch(ev)} data-testid="cat-form" noValidate>
        <div className="form-grid">
          <div className="field">
            <label htmlFor="cat-rs-name">{t("cat.rsName")} *</label>
            <input id="cat-rs-name" value={rsName} onChange={(ev) => setRsName(ev.target.value)} placeholder="job1" data-testid="cat-rs-name" />
          </div>
          <div className="field">
            <label htmlFor="cat-gpus">{t("cat.gpus", { min: e.gpus.min, max: e.gpus.max })}</label>
            <input id="cat-gpus" type="number" min={e.gpus.min} max={e.gpus.max} value={gpus} onChange={(ev) => setGpus(ev.target.value)} data-testid="cat-gpus" disabled={e.gpus.max === 0} />
          </div>
          {params.map((p) => (
            <ParamField key={key(p)} p={p} value={values[key(p)] ?? ""} problem={problemOf(key(p))} onChange={(v) => setValues((old) => ({ ...old, [key(p)]: v }))} />
          ))}
        </div>
        <h3>{t("cat.willRun")}</h3>
        {preview ? (
          <pre className="mono small preview" data-testid="cat-argv">
            {JSON.stringify(preview.argv)}
            {preview.env.length > 0 && `\nenv: ${preview.env.join(" ")}`}
            {preview.binds.map((b) => `\nbind: ${b.src} → ${b.dest}${b.readOnly ? " (ro)" : ""}`).join("")}
          </pre>
        ) : previewError ? (
          <ErrorBox error={previewError} />
        ) : (
          <p className="muted small">{t("cat.fillIn")}</p>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={found.length > 0 || !rsName.trim() || outcome.busy !== null} data-testid="cat-launch">
            {t("cat.launch")}
          </button>
          {admin && <ConfirmButton label={t("cat.remove")} question={t("cat.confirmRemove", { name: e.version ? `${e.name} ${e.version}` : e.name })} danger testid="cat-remove" onConfirm={() => void api.catalogRemove(entryKey(e)).then(onRemoved).catch((err) => setOutcome({ busy: null, done: null, error: toErrorPayload(err) }))} />}
        </div>
        <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      </form>
    </article>
  );
}
