import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload } from "../api";
import type { Caller } from "../bindings/Caller";
import type { ImageDetail } from "../bindings/ImageDetail";
import type { LocalImage } from "../bindings/LocalImage";
import type { Registry } from "../bindings/Registry";
import type { RemoteImageInfo } from "../bindings/RemoteImageInfo";
import { OperationStatus, type Outcome } from "../components/Busy";
import { ConfirmButton } from "../components/Confirm";
import { bytesBoth, when } from "../format";

const IDLE: Outcome = { busy: null, done: null, error: null };

/** Runs `f` with its label while busy, then says how it went. */
function useOutcome() {
  const [outcome, setOutcome] = useState<Outcome>(IDLE);
  const run = async <T,>(label: () => string, f: () => Promise<T>, done: (r: T) => () => string): Promise<T | null> => {
    setOutcome({ busy: label, done: null, error: null });
    try {
      const r = await f();
      setOutcome({ busy: null, done: done(r), error: null });
      return r;
    } catch (e) {
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
      return null;
    }
  };
  return { outcome, setOutcome, run };
}

export function ImagesPage() {
  const { t } = useTranslation();
  const [tab, setTab] = useState<"local" | "registries">("local");
  const [me, setMe] = useState<Caller | null>(null);
  useEffect(() => {
    void api.whoami().then(setMe).catch(() => undefined);
  }, []);
  return (
    <section className="page" aria-labelledby="img-title">
      <header className="page-head">
        <h1 id="img-title">{t("img.title")}</h1>
      </header>
      <div className="tabs" role="tablist">
        {(["local", "registries"] as const).map((k) => (
          <button key={k} type="button" role="tab" aria-selected={tab === k} data-testid={`img-tab-${k}`} onClick={() => setTab(k)}>
            {t(`img.tab.${k}`)}
          </button>
        ))}
      </div>
      {tab === "local" ? <LocalImages me={me} /> : <Registries me={me} />}
    </section>
  );
}

function LocalImages({ me }: { me: Caller | null }) {
  const { t, i18n } = useTranslation();
  const [list, setList] = useState<LocalImage[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const { outcome, setOutcome, run } = useOutcome();
  const refresh = useCallback(() => {
    api.imageList().then(setList).catch((e) => {
      setList([]);
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    });
  }, [setOutcome]);
  useEffect(() => {
    refresh();
    // A finished pull (or commit) shows up without a reload.
    const un = api.onJob((j) => j.state === "done" && refresh());
    return () => void un.then((f) => f());
  }, [refresh]);
  const current = list?.find((i) => i.id === selected) ?? null;
  const admin = me?.role === "admin";
  return (
    <>
      <PullForm onPulled={refresh} />
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      {admin && (
        <div className="actions">
          <ConfirmButton
            label={t("img.prune")}
            question={t("img.confirmPrune")}
            testid="img-prune"
            onConfirm={() =>
              void run(
                () => t("img.pruning"),
                () => api.imagePrune(),
                (r) => () => t("img.pruned", { n: r.removed.length, bytes: bytesBoth(r.reclaimed), kept: r.kept.length }),
              ).then(refresh)
            }
          />
        </div>
      )}
      {list === null ? (
        <p className="muted">{t("common.loading")}</p>
      ) : list.length === 0 ? (
        <p className="empty" data-testid="img-empty">
          {t("img.empty")}
        </p>
      ) : (
        <table className="table" data-testid="img-table">
          <thead>
            <tr>
              <th>{t("img.name")}</th>
              <th>{t("img.id")}</th>
              <th>{t("img.size")}</th>
              <th>{t("img.created")}</th>
              <th>{t("img.usedBy")}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((i) => (
              <tr key={i.id} className={i.id === selected ? "selected" : undefined} tabIndex={0} data-testid="img-row" onClick={() => setSelected(i.id)} onKeyDown={(e) => e.key === "Enter" && setSelected(i.id)}>
                <td className="mono small">{i.tags.length ? i.tags.join(", ") : <span className="muted">{t("img.dangling")}</span>}</td>
                <td className="mono small">{i.id.replace("sha256:", "").slice(0, 12)}</td>
                <td className="small">{bytesBoth(i.size)}</td>
                <td className="small">{when(i.created, i18n.language)}</td>
                <td className="small">
                  {i.usedBy.map((u) => `${u.replicaset}-${u.version}`).join(", ") || "—"}
                  {i.origin && <span className="muted"> · {t("img.committedFrom", { rs: `${i.origin.replicaset}-${i.origin.version}` })}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {current && <ImageDetailCard key={current.id} image={current} me={me} onChanged={refresh} onGone={() => setSelected(null)} />}
    </>
  );
}

function PullForm({ onPulled }: { onPulled: () => void }) {
  const { t } = useTranslation();
  const [ref, setRef] = useState("");
  const { outcome, setOutcome, run } = useOutcome();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!ref.trim()) return;
    void run(
      () => t("img.starting", { image: ref }),
      () => api.imagePull(ref.trim()),
      (j) => () => t("img.pullStarted", { image: j.image }),
    ).then(onPulled);
  };
  return (
    <>
      <form className="actions wrap card" onSubmit={submit} data-testid="img-pull-form">
        <label className="inline">
          {t("img.reference")}
          <input value={ref} onChange={(e) => setRef(e.target.value)} placeholder="127.0.0.1:5000/team/pytorch:2.3" data-testid="img-pull-ref" size={40} />
        </label>
        <button type="submit" className="primary" disabled={!ref.trim()} data-testid="img-pull">
          {t("img.pull")}
        </button>
        <span className="muted small">{t("img.pullHelp")}</span>
      </form>
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
    </>
  );
}

function ImageDetailCard({ image, me, onChanged, onGone }: { image: LocalImage; me: Caller | null; onChanged: () => void; onGone: () => void }) {
  const { t } = useTranslation();
  const [d, setD] = useState<ImageDetail | null>(null);
  const [target, setTarget] = useState(me && me.role !== "admin" ? `${me.user}/` : "");
  const { outcome, setOutcome, run } = useOutcome();
  useEffect(() => {
    api.imageInspect(image.id).then(setD).catch((e) => setOutcome({ busy: null, done: null, error: toErrorPayload(e) }));
  }, [image.id, setOutcome]);
  const name = image.tags[0] ?? image.id;
  return (
    <article className="card detail" data-testid="img-detail">
      <header className="page-head">
        <h2 className="mono">{name}</h2>
      </header>
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      <div className="actions wrap">
        <label className="inline">
          {t("img.tagAs")}
          <input value={target} onChange={(e) => setTarget(e.target.value)} placeholder="alice/model:v2" data-testid="img-tag-target" />
        </label>
        <button
          type="button"
          disabled={!target.trim()}
          data-testid="img-tag"
          onClick={() => void run(() => t("img.tagging"), () => api.imageTag(image.id, target.trim()), () => () => t("img.tagged", { target })).then(onChanged)}
        >
          {t("img.tag")}
        </button>
        {image.tags.map((tag) => (
          <span key={tag} className="inline">
            <button type="button" data-testid="img-push" onClick={() => void run(() => t("img.starting", { image: tag }), () => api.imagePush(tag), (j) => () => t("img.pushStarted", { image: j.image }))}>
              {t("img.push", { tag })}
            </button>
            <ConfirmButton
              label={t("img.remove", { tag })}
              question={image.tags.length > 1 ? t("img.confirmUntag", { tag }) : t("img.confirmRemove", { tag })}
              danger
              testid="img-remove"
              onConfirm={() =>
                void run(() => t("img.removing", { tag }), () => api.imageRemove(tag), () => () => t("img.removed", { tag })).then((r) => {
                  onChanged();
                  if (r && image.tags.length <= 1) onGone();
                })
              }
            />
          </span>
        ))}
      </div>
      {d && (
        <>
          <dl className="kv small" data-testid="img-config">
            <dt>{t("img.id")}</dt>
            <dd className="mono">{d.image.id}</dd>
            <dt>{t("img.platform")}</dt>
            <dd>
              {d.os}/{d.architecture}
            </dd>
            <dt>{t("img.cmd")}</dt>
            <dd className="mono">{[...d.entrypoint, ...d.cmd].join(" ") || "—"}</dd>
            <dt>{t("img.workdir")}</dt>
            <dd className="mono">{d.workingDir || "/"}</dd>
            <dt>{t("img.user")}</dt>
            <dd className="mono">{d.user || "root"}</dd>
            <dt>{t("img.env")}</dt>
            <dd className="mono">{d.env.join("\n") || "—"}</dd>
            <dt>{t("img.ports")}</dt>
            <dd className="mono">{d.exposedPorts.join(", ") || "—"}</dd>
            <dt>{t("img.digests")}</dt>
            <dd className="mono">{d.image.digests.join(", ") || "—"}</dd>
          </dl>
          <h3>{t("img.layers", { n: d.layers.length })}</h3>
          <table className="table" data-testid="img-layers">
            <tbody>
              {d.layers.map((l, i) => (
                <tr key={i}>
                  <td className="small">{bytesBoth(l.size)}</td>
                  <td className="mono small">{l.createdBy.slice(0, 120) || l.comment || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </article>
  );
}

function Registries({ me }: { me: Caller | null }) {
  const { t } = useTranslation();
  const [list, setList] = useState<Registry[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const { outcome, setOutcome, run } = useOutcome();
  const refresh = useCallback(() => {
    api.registryList().then(setList).catch((e) => {
      setList([]);
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    });
  }, [setOutcome]);
  useEffect(refresh, [refresh]);
  const admin = me?.role === "admin";
  return (
    <>
      {admin && <AddRegistry onAdded={refresh} />}
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      {list === null ? (
        <p className="muted">{t("common.loading")}</p>
      ) : list.length === 0 ? (
        <p className="empty" data-testid="reg-empty">
          {admin ? t("reg.emptyAdmin") : t("reg.empty")}
        </p>
      ) : (
        <table className="table" data-testid="reg-table">
          <thead>
            <tr>
              <th>{t("reg.name")}</th>
              <th>{t("reg.url")}</th>
              <th>{t("reg.user")}</th>
              <th>{t("reg.addedBy")}</th>
              {admin && <th />}
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr key={r.name} className={r.name === selected ? "selected" : undefined} tabIndex={0} data-testid={`reg-row-${r.name}`} onClick={() => setSelected(r.name)} onKeyDown={(e) => e.key === "Enter" && setSelected(r.name)}>
                <td>
                  <strong>{r.name}</strong>
                </td>
                <td className="mono small">{r.url}</td>
                <td>{r.username ?? t("reg.anonymous")}</td>
                <td>{r.createdBy}</td>
                {admin && (
                  <td onClick={(e) => e.stopPropagation()}>
                    <ConfirmButton
                      label={t("reg.remove")}
                      question={t("reg.confirmRemove", { name: r.name })}
                      danger
                      testid={`reg-remove-${r.name}`}
                      onConfirm={() => void run(() => t("reg.removing", { name: r.name }), () => api.registryRemove(r.name), () => () => t("reg.removed", { name: r.name })).then(refresh)}
                    />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && list?.some((r) => r.name === selected) && <Browse key={selected} registry={list.find((r) => r.name === selected)!} admin={admin} />}
    </>
  );
}

function AddRegistry({ onAdded }: { onAdded: () => void }) {
  const { t } = useTranslation();
  const [f, setF] = useState({ name: "", url: "", username: "", password: "" });
  const { outcome, setOutcome, run } = useOutcome();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run(
      () => t("reg.checking", { url: f.url }),
      () => api.registryAdd({ name: f.name.trim(), url: f.url.trim(), username: f.username.trim() || null, password: f.password || null }),
      (r) => () => t("reg.added", { name: r.name }),
    ).then((r) => {
      if (r) {
        setF({ name: "", url: "", username: "", password: "" });
        onAdded();
      }
    });
  };
  return (
    <>
      <form className="actions wrap card" onSubmit={submit} data-testid="reg-form">
        <label className="inline">
          {t("reg.name")}
          <input value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} placeholder="lab" data-testid="reg-form-name" />
        </label>
        <label className="inline">
          {t("reg.url")}
          <input value={f.url} onChange={(e) => setF({ ...f, url: e.target.value })} placeholder="https://registry.lab" data-testid="reg-form-url" />
        </label>
        <label className="inline">
          {t("reg.user")}
          <input value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} autoComplete="off" data-testid="reg-form-user" />
        </label>
        <label className="inline">
          {t("reg.password")}
          <input type="password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} autoComplete="new-password" data-testid="reg-form-password" />
        </label>
        <button type="submit" className="primary" disabled={!f.name.trim() || !f.url.trim()} data-testid="reg-form-submit">
          {t("reg.add")}
        </button>
        <span className="muted small">{t("reg.addHelp")}</span>
      </form>
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
    </>
  );
}

function Browse({ registry, admin }: { registry: Registry; admin: boolean }) {
  const { t, i18n } = useTranslation();
  const [repos, setRepos] = useState<string[] | null>(null);
  const [repo, setRepo] = useState("");
  const [tags, setTags] = useState<string[] | null>(null);
  const [info, setInfo] = useState<RemoteImageInfo | null>(null);
  const { outcome, setOutcome, run } = useOutcome();
  useEffect(() => {
    api.registryRepositories(registry.name).then(setRepos).catch((e) => {
      setRepos([]);
      setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
    });
  }, [registry.name, setOutcome]);
  const openRepo = (r: string) => {
    setRepo(r);
    setInfo(null);
    setTags(null);
    api.registryTags(registry.name, r).then(setTags).catch((e) => setOutcome({ busy: null, done: null, error: toErrorPayload(e) }));
  };
  const openTag = (tag: string) => {
    setInfo(null);
    void run(() => t("reg.reading"), () => api.registryInfo(registry.name, `${repo}:${tag}`), () => () => "").then((i) => {
      setInfo(i);
      setOutcome(IDLE);
    });
  };
  return (
    <article className="card detail" data-testid="reg-browse">
      <header className="page-head">
        <h2>{registry.name}</h2>
        <span className="muted small mono">{registry.host}</span>
      </header>
      <OperationStatus outcome={outcome} onDismiss={() => setOutcome(IDLE)} />
      <form
        className="actions"
        onSubmit={(e) => {
          e.preventDefault();
          if (repo.trim()) openRepo(repo.trim());
        }}
      >
        <label className="inline">
          {t("reg.repository")}
          <input value={repo} onChange={(e) => setRepo(e.target.value)} list="reg-repos" placeholder="team/pytorch" data-testid="reg-repo" />
        </label>
        <datalist id="reg-repos">{repos?.map((r) => <option key={r} value={r} />)}</datalist>
        <button type="submit" data-testid="reg-repo-open">
          {t("reg.showTags")}
        </button>
      </form>
      {repos && repos.length > 0 && (
        <ul className="chips" data-testid="reg-repos">
          {repos.map((r) => (
            <li key={r}>
              <button type="button" className="link mono small" onClick={() => openRepo(r)}>
                {r}
              </button>
            </li>
          ))}
        </ul>
      )}
      {tags && (
        <ul className="chips" data-testid="reg-tags">
          {tags.length === 0 && <li className="muted">{t("reg.noTags")}</li>}
          {tags.map((tag) => (
            <li key={tag}>
              <button type="button" className="link mono" data-testid={`reg-tag-${tag}`} onClick={() => openTag(tag)}>
                {tag}
              </button>
            </li>
          ))}
        </ul>
      )}
      {info && (
        <div data-testid="reg-info">
          <dl className="kv small">
            <dt>{t("reg.image")}</dt>
            <dd className="mono">
              {registry.host}/{info.repository}:{info.tag}
            </dd>
            <dt>{t("reg.digest")}</dt>
            <dd className="mono" data-testid="reg-info-digest">
              {info.digest}
            </dd>
            <dt>{t("reg.compressed")}</dt>
            <dd>{bytesBoth(info.size)}</dd>
            <dt>{t("img.created")}</dt>
            <dd>{when(info.created, i18n.language)}</dd>
            <dt>{t("reg.platforms")}</dt>
            <dd>{info.platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""} (${bytesBoth(p.size)})`).join(", ")}</dd>
          </dl>
          <div className="actions">
            <button
              type="button"
              className="primary"
              data-testid="reg-pull"
              onClick={() => void run(() => t("img.starting", { image: info.tag }), () => api.imagePull(`${registry.host}/${info.repository}:${info.tag}`), (j) => () => t("img.pullStarted", { image: j.image }))}
            >
              {t("img.pull")}
            </button>
            {admin && (
              <ConfirmButton
                label={t("reg.delete")}
                question={t("reg.confirmDelete", { image: `${info.repository}:${info.tag}`, digest: info.digest.slice(0, 19) })}
                danger
                testid="reg-delete"
                onConfirm={() =>
                  void run(
                    () => t("reg.deleting"),
                    () => api.registryDelete(registry.name, `${info.repository}:${info.tag}`),
                    (d) => () => t("reg.deleted", { tags: d.tags.join(", ") }),
                  ).then(() => openRepo(info.repository))
                }
              />
            )}
          </div>
        </div>
      )}
    </article>
  );
}
