import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { api, toErrorPayload, type RsAction } from "../api";
import type { Bind } from "../bindings/Bind";
import type { GpuSnapshot } from "../bindings/GpuSnapshot";
import type { RsInfo } from "../bindings/RsInfo";
import type { VersionRecord } from "../bindings/VersionRecord";
import { OperationStatus, type Outcome } from "../components/Busy";
import { ConfirmButton } from "../components/Confirm";
import { LogView, TerminalView } from "../components/TerminalView";
import { splitArgs } from "../args";
import { bytesBoth, when } from "../format";

const NAME_RE = /^[a-z0-9][a-z0-9_.]{0,39}$/;

/** Runs one operation at a time with progress, then says how it ended. */
function useOperation(after: () => void) {
  const [outcome, setOutcome] = useState<Outcome>({ busy: null, done: null, error: null });
  const run = useCallback(
    async <T,>(label: () => string, f: () => Promise<T>, done: (v: T) => string): Promise<T | undefined> => {
      setOutcome({ busy: label, done: null, error: null });
      try {
        const v = await f();
        setOutcome({ busy: null, done: () => done(v), error: null });
        after();
        return v;
      } catch (e) {
        setOutcome({ busy: null, done: null, error: toErrorPayload(e) });
        after();
        return undefined;
      }
    },
    [after],
  );
  return { outcome, run, clear: () => setOutcome({ busy: null, done: null, error: null }) };
}

function ports(i: { ports: [number, number][] }) {
  return i.ports.map(([c, h]) => `${h}→${c}`).join(", ");
}

export function ReplicaSetsPage() {
  const { t } = useTranslation();
  const [list, setList] = useState<RsInfo[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const refresh = useCallback(() => {
    api
      .rsList()
      .then(setList)
      .catch(() => setList([]));
  }, []);
  const op = useOperation(refresh);
  useEffect(() => {
    refresh();
    // Whatever changes a container (this app, the CLI, docker itself) shows here at once.
    const un = api.onContainersChanged(refresh);
    return () => void un.then((f) => f());
  }, [refresh]);
  const current = list?.find((r) => r.name === selected) ?? null;

  return (
    <section className="page" aria-labelledby="rs-title">
      <header className="page-head">
        <h1 id="rs-title">{t("rs.title")}</h1>
        <button type="button" className="primary" data-testid="rs-new" onClick={() => setCreating((c) => !c)}>
          {creating ? t("common.cancel") : t("rs.new")}
        </button>
      </header>
      <OperationStatus outcome={op.outcome} onDismiss={op.clear} />
      {creating && (
        <CreateForm
          onCreate={async (name, spec) => {
            const r = await op.run(() => t("rs.creating", { name }), () => api.rsRun(name, spec), (v) => t("rs.created", { name: v.container }));
            if (r) {
              setCreating(false);
              setSelected(name);
            }
          }}
          busy={op.outcome.busy !== null}
        />
      )}
      {list === null ? (
        <p className="muted">{t("common.loading")}</p>
      ) : list.length === 0 ? (
        <p className="empty" data-testid="rs-empty">
          {t("rs.empty")}
        </p>
      ) : (
        <table className="table" data-testid="rs-table">
          <thead>
            <tr>
              <th>{t("rs.name")}</th>
              <th>{t("rs.owner")}</th>
              <th>{t("rs.status")}</th>
              <th>{t("rs.image")}</th>
              <th>{t("rs.gpus")}</th>
              <th>{t("rs.ports")}</th>
              <th>{t("rs.version")}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <tr
                key={r.name}
                className={r.name === selected ? "selected" : undefined}
                data-testid={`rs-row-${r.name}`}
                tabIndex={0}
                onClick={() => setSelected(r.name)}
                onKeyDown={(e) => e.key === "Enter" && setSelected(r.name)}
              >
                <td>
                  <strong>{r.name}</strong>
                </td>
                <td data-testid="rs-owner">{r.spec.owner ?? "—"}</td>
                <td>
                  <span className={`badge st-${r.status}`} data-testid="rs-status">
                    {t(`rs.st.${r.status}`)}
                  </span>
                </td>
                <td className="mono small">{r.spec.image}</td>
                <td title={r.gpus.join("\n")}>{r.gpus.length}</td>
                <td className="mono small">{ports(r) || "—"}</td>
                <td>{r.container}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {current && <Detail rs={current} op={op} onDeleted={() => setSelected(null)} />}
    </section>
  );
}

function CreateForm({ onCreate, busy }: { onCreate: (name: string, spec: import("../bindings/RsSpec").RsSpec) => void; busy: boolean }) {
  const { t } = useTranslation();
  const [images, setImages] = useState<string[]>([]);
  const [volumes, setVolumes] = useState<string[]>([]);
  const [snap, setSnap] = useState<GpuSnapshot | null>(null);
  const [f, setF] = useState({ name: "", image: "", gpus: 0, binds: "", env: "", ports: "", command: "" });
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    api.imagesLocal().then((l) => {
      setImages(l);
      setF((x) => (x.image ? x : { ...x, image: l[0] ?? "" }));
    }).catch(() => setImages([]));
    api.volList().then((l) => setVolumes(l.map((v) => v.dockerName))).catch(() => setVolumes([]));
    let live = true;
    const sub = api.gpuSubscribe((s) => live && setSnap(s));
    return () => {
      live = false;
      void sub.then((id) => api.gpuUnsubscribe(id)).catch(() => {});
    };
  }, []);
  const free = snap?.gpus.filter((g) => g.heldBy.length === 0).length ?? 0;
  const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!NAME_RE.test(f.name)) return setProblem(t("rs.badName"));
    if (!f.image) return setProblem(t("rs.noImage"));
    const binds: Bind[] = [];
    for (const l of lines(f.binds)) {
      const [src, dest, ro, ...rest] = l.split(":");
      if (!src || !dest || rest.length > 0 || (ro !== undefined && ro !== "ro")) return setProblem(t("rs.badBind", { bind: l }));
      binds.push({ src, dest, readOnly: ro === "ro" });
    }
    const env = lines(f.env);
    const bad = env.find((e) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(e));
    if (bad) return setProblem(t("rs.badEnv", { env: bad }));
    const args = splitArgs(f.command);
    if (args === null) return setProblem(t("rs.badCommand"));
    const portList = f.ports.split(/[\s,]+/).filter(Boolean).map(Number);
    if (portList.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) return setProblem(t("rs.badPorts"));
    setProblem(null);
    onCreate(f.name, { image: f.image, command: args, env, binds, ports: portList, gpus: f.gpus });
  };
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) =>
    setF({ ...f, [k]: k === "gpus" ? Number(e.target.value) : e.target.value });

  return (
    <form className="form card wide" onSubmit={submit} data-testid="rs-form">
      <h2>{t("rs.new")}</h2>
      <label>
        {t("rs.name")}
        <input data-testid="rs-form-name" value={f.name} onChange={set("name")} placeholder="llama_ft" autoFocus required />
        <small className="muted">{t("rs.nameHelp")}</small>
      </label>
      <label>
        {t("rs.image")}
        <select data-testid="rs-form-image" value={f.image} onChange={set("image")}>
          {images.length === 0 && <option value="">{t("rs.noImages")}</option>}
          {images.map((i) => (
            <option key={i} value={i}>
              {i}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t("rs.gpus")}
        <input data-testid="rs-form-gpus" type="number" min={0} max={64} value={f.gpus} onChange={set("gpus")} />
        <small className="muted" data-testid="rs-form-free">
          {t("rs.gpusFree", { free, total: snap?.gpus.length ?? 0 })}
        </small>
      </label>
      <label>
        {t("rs.binds")}
        <textarea rows={2} value={f.binds} onChange={set("binds")} placeholder="/data/datasets:/data:ro" data-testid="rs-form-binds" />
        <small className="muted">{t("rs.bindsHelp")}</small>
        <InlineVolume
          onCreated={(dockerName) => {
            setVolumes((v) => [...v, dockerName]);
            setF((x) => ({ ...x, binds: `${x.binds.trim() ? `${x.binds.trim()}\n` : ""}${dockerName}:/data` }));
          }}
        />
        {volumes.length > 0 && (
          <select
            value=""
            data-testid="rs-form-volume"
            onChange={(e) => e.target.value && setF({ ...f, binds: `${f.binds.trim() ? `${f.binds.trim()}\n` : ""}${e.target.value}:/data` })}
          >
            <option value="">{t("rs.addVolume")}</option>
            {volumes.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </select>
        )}
      </label>
      <label>
        {t("rs.env")}
        <textarea rows={2} value={f.env} onChange={set("env")} placeholder="USER=foo" />
      </label>
      <label>
        {t("rs.containerPorts")}
        <input value={f.ports} onChange={set("ports")} placeholder="22, 8888" />
      </label>
      <label>
        {t("rs.command")}
        <input data-testid="rs-form-command" value={f.command} onChange={set("command")} placeholder="sleep infinity" />
      </label>
      {problem && (
        <p className="error-box" role="alert" data-testid="rs-form-problem">
          {problem}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy} data-testid="rs-form-submit">
          {t("rs.create")}
        </button>
      </div>
    </form>
  );
}

function Detail({ rs, op, onDeleted }: { rs: RsInfo; op: ReturnType<typeof useOperation>; onDeleted: () => void }) {
  const { t, i18n } = useTranslation();
  const [history, setHistory] = useState<VersionRecord[]>([]);
  const [gpus, setGpus] = useState(rs.spec.gpus);
  // Members commit under their own name (the service refuses anything else); root anywhere.
  const ns = rs.spec.owner && rs.spec.owner !== "root" ? `${rs.spec.owner}/` : "";
  const [image, setImage] = useState(`${ns}${rs.name}:v${rs.version}`);
  const [message, setMessage] = useState("");
  const [cmd, setCmd] = useState("");
  const [exec, setExec] = useState<string | null>(null);
  const [panel, setPanel] = useState<"none" | "terminal" | "logs">("none");
  const [streamError, setStreamError] = useState<string | null>(null);
  const onStreamError = useCallback((e: unknown) => setStreamError(toErrorPayload(e).message), []);
  useEffect(() => {
    api.rsHistory(rs.name).then(setHistory).catch(() => setHistory([]));
  }, [rs.name, rs.version, rs.status]);
  useEffect(() => setGpus(rs.spec.gpus), [rs.spec.gpus]);
  const busy = op.outcome.busy !== null;
  const act = (action: RsAction) =>
    op
      .run(() => t(`rs.doing.${action}`, { name: rs.name }), () => api.rsAction(rs.name, action), () => t(`rs.did.${action}`, { name: rs.name }))
      .then(() => action === "delete" && onDeleted());

  return (
    <article className="card detail" data-testid="rs-detail">
      <header className="page-head">
        <h2>
          {rs.name} <span className="muted">· {rs.container}</span>
        </h2>
        <span className={`badge st-${rs.status}`}>{t(`rs.st.${rs.status}`)}</span>
      </header>
      <dl className="facts small">
        <div>
          <dt>{t("rs.image")}</dt>
          <dd className="mono">{rs.spec.image}</dd>
        </div>
        <div>
          <dt>{t("rs.gpus")}</dt>
          <dd className="mono">{rs.gpus.join(", ") || "—"}</dd>
        </div>
        <div>
          <dt>{t("rs.ports")}</dt>
          <dd className="mono">{ports(rs) || "—"}</dd>
        </div>
      </dl>
      <div className="actions wrap">
        {rs.status === "paused" || rs.status === "stopped" || rs.status === "exited" ? (
          <button type="button" disabled={busy} data-testid="rs-continue" onClick={() => act("continue")}>
            {t("rs.action.continue")}
          </button>
        ) : (
          <button type="button" disabled={busy || rs.status !== "running"} data-testid="rs-pause" onClick={() => act("pause")}>
            {t("rs.action.pause")}
          </button>
        )}
        <ConfirmButton label={t("rs.action.stop")} question={t("rs.confirm.stop")} disabled={busy} onConfirm={() => act("stop")} testid="rs-stop" />
        <ConfirmButton label={t("rs.action.restart")} question={t("rs.confirm.restart")} disabled={busy} onConfirm={() => act("restart")} testid="rs-restart" />
        <ConfirmButton label={t("rs.action.delete")} question={t("rs.confirm.delete", { name: rs.name })} danger disabled={busy} onConfirm={() => act("delete")} testid="rs-delete" />
      </div>
      <div className="actions wrap">
        <label className="inline">
          {t("rs.gpus")}
          <input type="number" min={0} max={64} value={gpus} onChange={(e) => setGpus(Number(e.target.value))} data-testid="rs-patch-gpus" />
        </label>
        <ConfirmButton
          label={t("rs.patch")}
          question={t("rs.confirm.patch", { from: rs.spec.gpus, to: gpus })}
          disabled={busy || gpus === rs.spec.gpus}
          onConfirm={() => op.run(() => t("rs.patching", { name: rs.name }), () => api.rsPatch(rs.name, gpus), (v) => t("rs.patched", { container: v.container }))}
          testid="rs-patch"
        />
        <label className="inline">
          {t("rs.commitTo")}
          <input value={image} onChange={(e) => setImage(e.target.value)} data-testid="rs-commit-image" />
        </label>
        <input value={message} onChange={(e) => setMessage(e.target.value)} placeholder={t("rs.commitMessage")} />
        <ConfirmButton
          label={t("rs.commit")}
          question={t("rs.confirm.commit", { image })}
          disabled={busy || !image}
          onConfirm={() => op.run(() => t("rs.committing", { image }), () => api.rsCommit(rs.name, image, message), () => t("rs.committed", { image }))}
          testid="rs-commit"
        />
        <ConfirmButton
          label={t("rs.commitPush")}
          question={t("rs.confirm.commitPush", { image })}
          disabled={busy || !image}
          onConfirm={() => op.run(() => t("img.starting", { image }), () => api.rsCommitPush(rs.name, image, message), () => t("img.pushStarted", { image }))}
          testid="rs-commit-push"
        />
      </div>
      {rs.spec.binds.length > 0 && <SwapBind rs={rs} op={op} />}
      <h3>{t("rs.history")}</h3>
      <ol className="timeline" data-testid="rs-timeline">
        {[...history].reverse().map((v) => (
          <li key={v.version} className={v.version === rs.version ? "current" : undefined} data-testid={`rs-version-${v.version}`}>
            <div>
              <strong>v{v.version}</strong> <span className="muted">{when(v.createdAt, i18n.language)}</span> · {t(`rs.op.${v.op.split(" ")[0]}`, { version: v.op.split(" ")[1] ?? "" })}
              {v.op.includes("(configuration only)") && <span> ({t("rs.configOnly")})</span>}
              {v.op.includes("(flattened)") && <span> ({t("rs.flattened")})</span>}
              {v.changes.length > 0 && <span> · {v.changes.map((c) => t(`rs.change.${c.kind}`, "from" in c ? { from: c.from, to: c.to } : {})).join("; ")}</span>}
            </div>
            {v.commits.length > 0 && (
              <div className="small mono" data-testid={`rs-commits-${v.version}`}>
                {t("rs.committedTo", { images: v.commits.join(", ") })}
              </div>
            )}
            <div className="muted small">
              {t("rs.versionGot", { gpus: v.gpus.length, ports: ports(v) || "—" })}
              {v.snapshotBytes != null && !v.pruned && <span data-testid={`rs-files-${v.version}`}> · {t("rs.files", { size: bytesBoth(v.snapshotBytes) })}</span>}
              {v.pruned && (
                <>
                  {" · "}
                  <span className="badge warn" data-testid={`rs-pruned-${v.version}`}>
                    {t("rs.filesPruned")}
                  </span>
                </>
              )}
            </div>
            {v.version !== rs.version && (
              <ConfirmButton
                label={v.pruned ? t("rs.rollbackConfigTo", { version: v.version }) : t("rs.rollbackTo", { version: v.version })}
                question={v.pruned ? t("rs.confirm.rollbackConfig", { version: v.version }) : t("rs.confirm.rollback", { version: v.version })}
                disabled={busy}
                onConfirm={() => op.run(() => t("rs.rollingBack", { version: v.version }), () => api.rsRollback(rs.name, v.version, v.pruned), (r) => t("rs.rolledBack", { container: r.container }))}
                testid={`rs-rollback-${v.version}`}
              />
            )}
          </li>
        ))}
      </ol>
      <h3>{t("rs.exec")}</h3>
      <form
        className="actions"
        onSubmit={async (e) => {
          e.preventDefault();
          const r = await op.run(() => t("rs.running"), () => api.rsExec(rs.name, ["sh", "-c", cmd], 60), (o) => t("rs.exitCode", { code: o.exitCode }));
          if (r)
            setExec(
              `$ ${cmd}\n${r.stdout}${r.stderr ? `\n[stderr]\n${r.stderr}` : ""}` +
                (r.truncated ? `\n${t("rs.execTruncated", { bytes: bytesBoth(r.stdoutBytes + r.stderrBytes), cap: bytesBoth(8 << 20) })}` : "") +
                `\n[exit ${r.exitCode}]`,
            );
        }}
      >
        <input className="grow mono" value={cmd} onChange={(e) => setCmd(e.target.value)} placeholder="nvidia-smi" data-testid="rs-exec-input" />
        <button type="submit" disabled={busy || !cmd.trim() || rs.status !== "running"}>
          {t("rs.execRun")}
        </button>
        <button
          type="button"
          data-testid="rs-open-terminal"
          disabled={rs.status !== "running"}
          aria-pressed={panel === "terminal"}
          onClick={() => setPanel(panel === "terminal" ? "none" : "terminal")}
        >
          {t("rs.terminal")}
        </button>
        <button type="button" data-testid="rs-follow-logs" aria-pressed={panel === "logs"} onClick={() => setPanel(panel === "logs" ? "none" : "logs")}>
          {t("rs.logs")}
        </button>
      </form>
      {exec !== null && <pre className="console" data-testid="rs-exec-output">{exec}</pre>}
      {streamError && <p className="error-box">{streamError}</p>}
      {panel === "terminal" && <TerminalView name={rs.name} onError={onStreamError} />}
      {panel === "logs" && <LogView name={rs.name} onError={onStreamError} />}
    </article>
  );
}

/** Swaps one bind's source (e.g. a volume for its next version): a new version, files kept. */
function SwapBind({ rs, op }: { rs: RsInfo; op: ReturnType<typeof useOperation> }) {
  const { t } = useTranslation();
  const [i, setI] = useState(0);
  const old = rs.spec.binds[i] ?? rs.spec.binds[0]!;
  const [src, setSrc] = useState(old.src);
  useEffect(() => setSrc(old.src), [old.src]);
  return (
    <div className="actions wrap">
      <label className="inline">
        {t("rs.bind")}
        <select value={i} onChange={(e) => setI(Number(e.target.value))} data-testid="rs-swap-which">
          {rs.spec.binds.map((b, k) => (
            <option key={k} value={k}>
              {b.src}:{b.dest}
            </option>
          ))}
        </select>
      </label>
      <label className="inline">
        {t("rs.newSource")}
        <input value={src} onChange={(e) => setSrc(e.target.value)} data-testid="rs-swap-src" />
      </label>
      <ConfirmButton
        label={t("rs.swap")}
        question={t("rs.confirm.swap", { from: old.src, to: src, dest: old.dest })}
        disabled={op.outcome.busy !== null || !src || src === old.src}
        onConfirm={() =>
          op.run(
            () => t("rs.patching", { name: rs.name }),
            () => api.rsPatch(rs.name, null, [old, { ...old, src }]),
            (v) => t("rs.patched", { container: v.container }),
          )
        }
        testid="rs-swap"
      />
    </div>
  );
}

/** Creates a volume without leaving the form; it is bound at /data. */
function InlineVolume({ onCreated }: { onCreated: (dockerName: string) => void }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [size, setSize] = useState("20GB");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!open) {
    return (
      <button type="button" className="link" data-testid="rs-form-new-volume" onClick={() => setOpen(true)}>
        {t("rs.newVolume")}
      </button>
    );
  }
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const v = await api.volCreate(name, size);
      onCreated(v.dockerName);
      setOpen(false);
    } catch (e) {
      setError(toErrorPayload(e).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="actions wrap">
      <input value={name} onChange={(e) => setName(e.target.value)} placeholder={t("vol.name")} data-testid="rs-form-volume-name" />
      <input value={size} onChange={(e) => setSize(e.target.value)} placeholder="20GB" data-testid="rs-form-volume-size" />
      <button type="button" disabled={busy || !name} onClick={create} data-testid="rs-form-volume-create">
        {busy ? t("vol.creating", { name }) : t("vol.create")}
      </button>
      {error && <span className="error-box small">{error}</span>}
    </span>
  );
}
