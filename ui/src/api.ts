// The one way the UI talks to Rust: typed wrappers over Tauri commands, using the types
// generated from the Rust core (src/bindings, checked for drift by a Rust test).
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { DockerStatus } from "./bindings/DockerStatus";
import type { DoctorCheck } from "./bindings/DoctorCheck";
import type { ErrorPayload } from "./bindings/ErrorPayload";
import type { GpuSnapshot } from "./bindings/GpuSnapshot";
import type { HistoryPoint } from "./bindings/HistoryPoint";
import type { Settings } from "./bindings/Settings";
import type { Bind } from "./bindings/Bind";
import type { ExecOutput } from "./bindings/ExecOutput";
import type { PortMap } from "./bindings/PortMap";
import type { RsInfo } from "./bindings/RsInfo";
import type { RsSpec } from "./bindings/RsSpec";
import type { VersionRecord } from "./bindings/VersionRecord";
import type { VolumeInfo } from "./bindings/VolumeInfo";
import type { VolumeVersion } from "./bindings/VolumeVersion";
import type { Caller } from "./bindings/Caller";
import type { PolicyRow } from "./bindings/PolicyRow";
import type { Effective } from "./bindings/Effective";
import type { AuditEntry } from "./bindings/AuditEntry";
import type { Progress } from "./bindings/Progress";
import type { LocalImage } from "./bindings/LocalImage";
import type { ImageDetail } from "./bindings/ImageDetail";
import type { PruneReport } from "./bindings/PruneReport";
import type { JobView } from "./bindings/JobView";
import type { Registry } from "./bindings/Registry";
import type { RegistryAdd } from "./bindings/RegistryAdd";
import type { RemoteImageInfo } from "./bindings/RemoteImageInfo";
import type { RemoteDeleted } from "./bindings/RemoteDeleted";
import type { CatalogItem } from "./bindings/CatalogItem";
import type { Imported } from "./bindings/Imported";
import type { Rendered } from "./bindings/Rendered";

/** `gpudeck policy ls`: the rows the caller may see and their own limits. */
export type PolicyView = { rows: PolicyRow[]; you: Effective };
/** What to change in a user's row; `clear` resets fields to the default. */
export type PolicyUpdate = {
  maxGpus?: number | null;
  bindRoots?: string[] | null;
  rootInContainer?: boolean | null;
  /** Sizes as typed ("500GB"); the service parses them. */
  maxVolumeSize?: string | null;
  memory?: string | null;
  cpus?: number | null;
  clear?: PolicyField[];
};
export type PolicyField = "maxGpus" | "bindRoots" | "rootInContainer" | "maxVolumeBytes" | "memoryBytes" | "cpusMilli";

export type RsAction = "stop" | "pause" | "continue" | "restart" | "delete";

export function isErrorPayload(e: unknown): e is ErrorPayload {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/** Any thrown value as an ErrorPayload (a string from Tauri itself becomes code "internal"). */
export function toErrorPayload(e: unknown): ErrorPayload {
  if (isErrorPayload(e)) return e;
  return { code: "internal", message: String(e) };
}

export const api = {
  /** Who the service says this user is; fails with service_unreachable / service_denied. */
  whoami: () => invoke<Caller>("whoami"),
  /** The Linux user the app runs as. */
  osUser: () => invoke<string>("os_user"),
  onServiceStatus: (f: (up: boolean) => void): Promise<UnlistenFn> => listen<boolean>("service-status", (e) => f(e.payload)),
  policyGet: () => invoke<PolicyView>("policy_get"),
  policySet: (user: string, update: PolicyUpdate) => invoke<PolicyRow>("policy_set", { user, update }),
  audit: () => invoke<AuditEntry[]>("audit"),
  getSettings: () => invoke<Settings>("get_settings"),
  setSettings: (settings: Settings) => invoke<Settings>("set_settings", { settings }),
  dockerStatus: () => invoke<DockerStatus>("docker_status"),
  onDockerStatus: (f: (s: DockerStatus) => void): Promise<UnlistenFn> =>
    listen<DockerStatus>("docker-status", (e) => f(e.payload)),
  onContainersChanged: (f: () => void): Promise<UnlistenFn> => listen<number>("containers-changed", () => f()),
  /** Every step of a journaled operation (a patch, a resize), as the service writes it. */
  onProgress: (f: (p: Progress) => void): Promise<UnlistenFn> => listen<Progress>("progress", (e) => f(e.payload)),
  doctor: () => invoke<DoctorCheck[]>("doctor"),
  uiReady: () => invoke<void>("ui_ready"),
  gpuHistory: () => invoke<Record<string, HistoryPoint[]>>("gpu_history"),
  /** Streams snapshots from the Rust sampler; the id ends it through gpuUnsubscribe. */
  gpuSubscribe: (f: (s: GpuSnapshot) => void): Promise<number> => {
    const ch = new Channel<GpuSnapshot>();
    ch.onmessage = f;
    return invoke<number>("gpu_subscribe", { onSample: ch });
  },
  gpuUnsubscribe: (id: number) => invoke<void>("gpu_unsubscribe", { id }),
  rsList: () => invoke<RsInfo[]>("rs_list"),
  rsHistory: (name: string) => invoke<VersionRecord[]>("rs_history", { name }),
  rsRun: (name: string, spec: RsSpec) => invoke<RsInfo>("rs_run", { name, spec }),
  rsPatch: (name: string, gpus: number | null, swap: [Bind, Bind] | null = null) => invoke<RsInfo>("rs_patch", { name, gpus, swap }),
  rsRollback: (name: string, version: number, configOnly = false) => invoke<RsInfo>("rs_rollback", { name, version, configOnly }),
  rsPrune: (name: string, keep: number) => invoke<number[]>("rs_prune", { name, keep }),
  rsFilesBytes: () => invoke<number>("rs_files_bytes"),
  rsAction: (name: string, action: RsAction) => invoke<RsInfo | null>("rs_action", { name, action }),
  rsCommit: (name: string, image: string, message: string) => invoke<string>("rs_commit", { name, image, message }),
  rsExec: (name: string, command: string[], timeoutS: number) => invoke<ExecOutput>("rs_exec", { name, command, timeoutS }),
  imagesLocal: () => invoke<string[]>("images_local"),
  terminalOpen: (name: string, f: (text: string) => void): Promise<number> => {
    const ch = new Channel<string>();
    ch.onmessage = f;
    return invoke<number>("rs_terminal_open", { name, onOutput: ch });
  },
  terminalInput: (id: number, data: string) => invoke<void>("rs_terminal_input", { id, data }),
  terminalResize: (id: number, cols: number, rows: number) => invoke<void>("rs_terminal_resize", { id, cols, rows }),
  terminalClose: (id: number) => invoke<void>("rs_terminal_close", { id }),
  logsFollow: (name: string, f: (chunk: string) => void): Promise<number> => {
    const ch = new Channel<string>();
    ch.onmessage = f;
    return invoke<number>("rs_logs_follow", { name, onChunk: ch });
  },
  streamClose: (id: number) => invoke<void>("stream_close", { id }),
  portsMap: () => invoke<PortMap>("ports_map"),
  volList: () => invoke<VolumeInfo[]>("vol_list"),
  volHistory: (name: string) => invoke<VolumeVersion[]>("vol_history", { name }),
  volCreate: (name: string, size: string) => invoke<VolumeInfo>("vol_create", { name, size }),
  volResize: (name: string, size: string, moveUsers: boolean) => invoke<VolumeInfo>("vol_resize", { name, size, moveUsers }),
  volDelete: (name: string) => invoke<void>("vol_delete", { name }),
  imageList: () => invoke<LocalImage[]>("image_list"),
  imageInspect: (image: string) => invoke<ImageDetail>("image_inspect", { image }),
  imageTag: (source: string, target: string) => invoke<void>("image_tag", { source, target }),
  imageRemove: (image: string) => invoke<string[]>("image_remove", { image }),
  imagePrune: () => invoke<PruneReport>("image_prune"),
  /** Starts a pull; its progress comes as `job` events (onJob). */
  imagePull: (image: string) => invoke<JobView>("image_pull", { image }),
  imagePush: (image: string) => invoke<JobView>("image_push", { image }),
  rsCommitPush: (name: string, image: string, message: string) => invoke<JobView>("rs_commit_push", { name, image, message }),
  jobList: () => invoke<JobView[]>("job_list"),
  jobCancel: (id: number) => invoke<JobView>("job_cancel", { id }),
  /** Every update of the user's pulls and pushes (at most 10 a second a job). */
  onJob: (f: (j: JobView) => void): Promise<UnlistenFn> => listen<JobView>("job", (e) => f(e.payload)),
  registryList: () => invoke<Registry[]>("registry_list"),
  registryAdd: (registry: RegistryAdd) => invoke<Registry>("registry_add", { registry }),
  registryRemove: (name: string) => invoke<void>("registry_remove", { name }),
  registryRepositories: (name: string) => invoke<string[]>("registry_repositories", { name }),
  registryTags: (name: string, repository: string) => invoke<string[]>("registry_tags", { name, repository }),
  registryInfo: (name: string, image: string) => invoke<RemoteImageInfo>("registry_info", { name, image }),
  registryDelete: (name: string, image: string) => invoke<RemoteDeleted>("registry_delete", { name, image }),
  /** Entries with their compatibility here; `filter` is UFDL's filter specification (JSON). */
  catalogList: (filter: string | null = null) => invoke<CatalogItem[]>("catalog_list", { filter }),
  catalogImport: (format: "auto" | "gpudeck" | "argon" | "ufdl", text: string) => invoke<Imported[]>("catalog_import", { format, text }),
  catalogRemove: (name: string) => invoke<void>("catalog_remove", { name }),
  /** The argv (and masked env, binds) a launch with these values would run; `KIND.NAME` keys. */
  catalogRender: (name: string, values: Record<string, string>) => invoke<Rendered>("catalog_render", { name, values }),
  catalogLaunch: (name: string, replicaset: string, gpus: number | null, values: Record<string, string>) =>
    invoke<RsInfo>("catalog_launch", { name, replicaset, gpus, values }),
};
