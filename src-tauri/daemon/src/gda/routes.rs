//! gpu-docker-api's routes (its §4), each a few lines: parse the body as it does, call the local
//! API as the token's user, answer in its envelope with its codes.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::{Extension, Router};
use gpudeck_api::PatchRequest;
use gpudeck_core::policy::Caller;
use gpudeck_core::replicaset::{Bind, RsInfo, RsSpec};
use gpudeck_core::store::VersionRecord;
use gpudeck_core::volume::parse_size;
use gpudeck_core::CoreError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{fail, ok, Gda};

type G = State<Gda>;
type C = Extension<Caller>;

pub fn routes() -> Router<Gda> {
    Router::new()
        .route("/replicaSet", post(run))
        .route(
            "/replicaSet/{name}",
            get(info).patch(patch_rs).delete(delete),
        )
        .route("/replicaSet/{name}/commit", post(commit))
        .route("/replicaSet/{name}/execute", post(execute))
        .route("/replicaSet/{name}/rollback", patch(rollback))
        .route("/replicaSet/{name}/stop", patch(stop))
        .route("/replicaSet/{name}/pause", patch(pause))
        .route("/replicaSet/{name}/continue", patch(cont))
        .route("/replicaSet/{name}/restart", patch(restart))
        .route("/replicaSet/{name}/history", get(history))
        .route("/volumes", post(vol_create))
        .route("/volumes/{name}", get(vol_info).delete(vol_delete))
        .route("/volumes/{name}/size", patch(vol_size))
        .route("/volumes/{name}/history", get(vol_history))
        .route("/resources/gpus", get(gpus))
        .route("/resources/ports", get(ports))
}

/// The body as gpu-docker-api binds it: JSON, unknown fields ignored; else 1000.
fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(b).map_err(|e| {
        Box::new(fail(
            1000,
            Some(&CoreError::InvalidInput {
                what: "request body".into(),
                reason: e.to_string(),
            }),
        ))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GdaBind {
    #[serde(default)]
    src: String,
    #[serde(default)]
    dest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerRun {
    #[serde(default)]
    image_name: String,
    #[serde(default)]
    replica_set_name: String,
    #[serde(default)]
    gpu_count: i64,
    #[serde(default)]
    binds: Vec<GdaBind>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    container_ports: Vec<String>,
}

fn bad_input(what: &str, reason: &str) -> CoreError {
    CoreError::InvalidInput {
        what: what.into(),
        reason: reason.into(),
    }
}

async fn run(State(g): G, Extension(c): C, b: Bytes) -> Response {
    let r: ContainerRun = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if r.image_name.is_empty() {
        return fail(1001, None);
    }
    if r.replica_set_name.is_empty() {
        return fail(1002, None);
    }
    if r.replica_set_name.contains('-') {
        return fail(1003, None);
    }
    if r.gpu_count < 0 {
        return fail(1012, None);
    }
    let mut ports = Vec::new();
    for p in &r.container_ports {
        match p.trim_end_matches("/tcp").parse::<u16>() {
            Ok(n) if n > 0 => ports.push(n),
            _ => {
                return fail(
                    1004,
                    Some(&bad_input(
                        "container port",
                        &format!("\"{p}\" is not a port number (TCP, 1-65535)"),
                    )),
                )
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    let spec = RsSpec {
        image: r.image_name,
        command: r.cmd,
        env: r.env,
        binds: r
            .binds
            .into_iter()
            .map(|b| Bind {
                src: b.src,
                dest: b.dest,
                read_only: false,
            })
            .collect(),
        ports,
        gpus: r.gpu_count as u32,
        ..Default::default()
    };
    match g.client(&c).rs_run(&r.replica_set_name, spec).await {
        Ok(i) => ok(json!({ "name": i.container })),
        Err(e) => fail(
            match e.code() {
                "rs_exists" => 1008,
                "not_enough_gpus" | "gpu_limit" => 1013,
                "not_enough_ports" => 1014,
                _ => 1004,
            },
            Some(&e),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitBody {
    #[serde(default)]
    new_image_name: String,
}

async fn commit(State(g): G, Extension(c): C, Path(name): Path<String>, b: Bytes) -> Response {
    let r: CommitBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if r.new_image_name.is_empty() {
        return fail(1015, Some(&bad_input("newImageName", "it is empty")));
    }
    match g.client(&c).rs_commit(&name, &r.new_image_name, "").await {
        Ok(rep) => ok(json!({ "imageName": rep.image })),
        Err(e) => fail(1015, Some(&e)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecBody {
    #[serde(default)]
    work_dir: String,
    #[serde(default)]
    cmd: Vec<String>,
}

async fn execute(State(g): G, Extension(c): C, Path(name): Path<String>, b: Bytes) -> Response {
    let r: ExecBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if r.cmd.is_empty() {
        return fail(1006, Some(&bad_input("cmd", "it is empty")));
    }
    // A working folder other than / runs the command through sh (cd, then exec).
    let cmd = if r.work_dir.is_empty() || r.work_dir == "/" {
        r.cmd
    } else {
        let mut v: Vec<String> = ["sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "gda-exec"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(r.work_dir);
        v.extend(r.cmd);
        v
    };
    match g
        .client(&c)
        .rs_exec(&name, &cmd, Duration::from_secs(3600))
        .await
    {
        Ok(o) => {
            ok(json!({ "stdout": format!("{}{}", o.stdout, o.stderr), "exitCode": o.exit_code }))
        }
        Err(e) => fail(1006, Some(&e)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GpuPatch {
    #[serde(default)]
    gpu_count: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumePatch {
    #[serde(default)]
    old_bind: Option<GdaBind>,
    #[serde(default)]
    new_bind: Option<GdaBind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    gpu_patch: Option<GpuPatch>,
    #[serde(default)]
    volume_patch: Option<VolumePatch>,
}

async fn patch_rs(State(g): G, Extension(c): C, Path(name): Path<String>, b: Bytes) -> Response {
    let r: PatchBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let gpus = match r.gpu_patch {
        Some(p) if p.gpu_count < 0 => return fail(1012, None),
        Some(p) => Some(p.gpu_count as u32),
        None => None,
    };
    let swap = match r.volume_patch {
        None => None,
        Some(v) => match (v.old_bind, v.new_bind) {
            (Some(o), Some(n))
                if !o.src.is_empty()
                    && !o.dest.is_empty()
                    && !n.src.is_empty()
                    && !n.dest.is_empty() =>
            {
                Some((
                    Bind {
                        src: o.src,
                        dest: o.dest,
                        read_only: false,
                    },
                    Bind {
                        src: n.src,
                        dest: n.dest,
                        read_only: false,
                    },
                ))
            }
            _ => {
                return fail(
                    1000,
                    Some(&bad_input(
                        "volumePatch",
                        "oldBind and newBind each need src and dest",
                    )),
                )
            }
        },
    };
    let cl = g.client(&c);
    // `{}` ("replicate"): a new version with the same settings, as a restart makes.
    let result = if gpus.is_none() && swap.is_none() {
        cl.rs_action(&name, "restart").await
    } else {
        cl.rs_patch(&name, &PatchRequest { gpus, swap }).await
    };
    match result {
        Ok(i) => ok(json!({ "containerName": i.container })),
        Err(e) => fail(1007, Some(&e)),
    }
}

#[derive(Deserialize)]
struct RollbackBody {
    #[serde(default)]
    version: i64,
}

async fn rollback(State(g): G, Extension(c): C, Path(name): Path<String>, b: Bytes) -> Response {
    let r: RollbackBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if r.version < 0 {
        return fail(1020, None);
    }
    let cl = g.client(&c);
    match cl.rs_info(&name).await {
        Ok(i) if i64::from(i.version) == r.version => return fail(1022, None),
        Ok(_) => {}
        Err(e) => return fail(1021, Some(&e)),
    }
    match cl.rs_rollback(&name, r.version as u32, false).await {
        Ok(i) => ok(json!({ "containerName": i.container })),
        Err(e) => fail(1021, Some(&e)),
    }
}

async fn action(
    g: &Gda,
    c: &Caller,
    name: &str,
    action: &str,
    code: u32,
    reply_name: bool,
) -> Response {
    match g.client(c).rs_action(name, action).await {
        Ok(i) if reply_name => ok(json!({ "containerName": i.container })),
        Ok(_) => ok(Value::Null),
        Err(e) => fail(code, Some(&e)),
    }
}

async fn stop(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    action(&g, &c, &name, "stop", 1010, false).await
}

async fn pause(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    action(&g, &c, &name, "pause", 1018, false).await
}

async fn cont(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    action(&g, &c, &name, "continue", 1011, false).await
}

async fn restart(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    action(&g, &c, &name, "restart", 1011, true).await
}

async fn delete(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    match g.client(&c).rs_delete(&name).await {
        Ok(()) => ok(Value::Null),
        Err(e) => fail(1005, Some(&e)),
    }
}

/// `2006-01-02 15:04:05` in local time, as gpu-docker-api writes times.
fn go_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// A version in the shape of gpu-docker-api's `EtcdContainerInfo` (the Docker config fields it
/// stored, PascalCase).
fn container_info(
    name: &str,
    version: u32,
    spec: &RsSpec,
    gpus: &[String],
    ports: &[(u16, u16)],
    created: i64,
) -> Value {
    let bindings: serde_json::Map<String, Value> = ports
        .iter()
        .map(|(cont, host)| {
            (
                format!("{cont}/tcp"),
                json!([{ "HostIp": "", "HostPort": host.to_string() }]),
            )
        })
        .collect();
    let exposed: serde_json::Map<String, Value> = spec
        .ports
        .iter()
        .map(|p| (format!("{p}/tcp"), json!({})))
        .collect();
    let env = &spec.env;
    let devices = if gpus.is_empty() {
        json!([])
    } else {
        // As Docker's HostConfig writes it, Count and Options included (both required by
        // gpu-docker-api's API document): Count 0 with DeviceIDs, Options null.
        json!([{ "Driver": "nvidia", "Count": 0, "DeviceIDs": gpus, "Capabilities": [["gpu"]], "Options": null }])
    };
    json!({
        "version": version,
        "createTime": go_time(created),
        "containerName": format!("{name}-{version}"),
        "config": { "Image": spec.image, "Env": env, "Cmd": spec.command, "ExposedPorts": exposed },
        "hostConfig": {
            "Binds": spec.binds.iter().map(|b| format!("{}:{}", b.src, b.dest)).collect::<Vec<_>>(),
            "PortBindings": bindings,
            "DeviceRequests": devices,
        },
    })
}

fn rs_info_value(i: &RsInfo) -> Value {
    container_info(&i.name, i.version, &i.spec, &i.gpus, &i.ports, i.created_at)
}

fn version_value(v: &VersionRecord) -> Value {
    container_info(&v.name, v.version, &v.spec, &v.gpus, &v.ports, v.created_at)
}

async fn info(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    match g.client(&c).rs_info(&name).await {
        Ok(i) => ok(json!({ "Info": rs_info_value(&i) })),
        Err(e) => fail(1016, Some(&e)),
    }
}

async fn history(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    match g.client(&c).rs_history(&name).await {
        Ok(h) => ok(json!({
            "history": h.iter().rev().map(|v| json!({
                "version": v.version, "createTime": go_time(v.created_at), "status": version_value(v),
            })).collect::<Vec<_>>()
        })),
        Err(e) => fail(1017, Some(&e)),
    }
}

/// `20GB` as gpu-docker-api writes sizes (decimal units), bytes when none fits.
fn size_text(b: u64) -> String {
    for (f, u) in [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ] {
        if b >= f && b.is_multiple_of(f) {
            return format!("{}{u}", b / f);
        }
    }
    b.to_string()
}

#[derive(Deserialize)]
struct VolBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    size: String,
}

async fn vol_create(State(g): G, Extension(c): C, b: Bytes) -> Response {
    let r: VolBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if r.name.contains('-') {
        return fail(1031, None);
    }
    if r.name.starts_with('/') {
        return fail(1032, None);
    }
    match g.client(&c).vol_create(&r.name, &r.size).await {
        Ok(v) => ok(json!({ "name": v.docker_name, "size": size_text(v.size_bytes) })),
        Err(e) if e.code() == "invalid_input" && e.to_string().contains("exists already") => {
            fail(1026, Some(&e))
        }
        Err(e) => fail(1023, Some(&e)),
    }
}

#[derive(Deserialize)]
struct SizeBody {
    #[serde(default)]
    size: String,
}

async fn vol_size(State(g): G, Extension(c): C, Path(name): Path<String>, b: Bytes) -> Response {
    let r: SizeBody = match body(&b) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let upper = r.size.trim().to_uppercase();
    if !["KB", "MB", "GB", "TB"].iter().any(|u| upper.ends_with(u)) {
        return fail(1029, None);
    }
    let bytes = match parse_size(&r.size) {
        Ok(b) => b,
        Err(e) => return fail(1029, Some(&e)),
    };
    let cl = g.client(&c);
    let cur = match cl.vol_info(&name).await {
        Ok(v) => v,
        Err(e) => return fail(1035, Some(&e)),
    };
    // Sizes are compared as numbers ("20gb" and "20GB" are the same size).
    if cur.size_bytes == bytes {
        return fail(1028, None);
    }
    // The replicaSets that bind it move to the new version with it (gpu-docker-api refuses, or
    // loses the data).
    match cl.vol_resize(&name, &r.size, true).await {
        Ok(v) => ok(json!({ "name": v.docker_name, "size": size_text(v.size_bytes) })),
        Err(e) if e.to_string().contains("uses") && bytes < cur.size_bytes => fail(1030, Some(&e)),
        Err(e) => fail(1035, Some(&e)),
    }
}

async fn vol_delete(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    match g.client(&c).vol_delete(&name).await {
        Ok(()) => ok(Value::Null),
        Err(e) => fail(1025, Some(&e)),
    }
}

async fn vol_info(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    let cl = g.client(&c);
    let (v, h) = match (cl.vol_info(&name).await, cl.vol_history(&name).await) {
        (Ok(v), Ok(h)) => (v, h),
        (Err(e), _) | (_, Err(e)) => return fail(1033, Some(&e)),
    };
    let created = h
        .iter()
        .find(|x| x.version == v.version)
        .map(|x| x.created_at)
        .unwrap_or(0);
    ok(json!({ "Info": {
        "version": v.version, "createTime": go_time(created),
        "opt": { "Driver": "local", "DriverOpts": { "size": size_text(v.size_bytes) }, "Name": v.docker_name },
    }}))
}

async fn vol_history(State(g): G, Extension(c): C, Path(name): Path<String>) -> Response {
    match g.client(&c).vol_history(&name).await {
        Ok(h) => ok(json!({ "history": h.iter().rev().map(|v| json!({
            "version": v.version, "createTime": go_time(v.created_at),
            "status": {
                "version": v.version, "createTime": go_time(v.created_at),
                "opt": { "Driver": "local", "DriverOpts": { "size": size_text(v.size_bytes) }, "Name": format!("{}-{}", v.name, v.version) },
            },
        })).collect::<Vec<_>>() })),
        Err(e) => fail(1034, Some(&e)),
    }
}

/// `{"gpus": {"GPU-…": 0|1}}`: 0 free, 1 held (as the code does; its README says the opposite).
async fn gpus(State(g): G, Extension(c): C) -> Response {
    match g.client(&c).gpus().await {
        Ok(s) => {
            let m: serde_json::Map<String, Value> = s
                .gpus
                .iter()
                .filter_map(|x| Some((x.uuid.clone()?, json!(u8::from(!x.held_by.is_empty())))))
                .collect();
            ok(json!({ "gpus": m }))
        }
        Err(e) => fail(500, Some(&e)),
    }
}

async fn ports(State(g): G, Extension(c): C) -> Response {
    match g.client(&c).ports().await {
        Ok(p) => {
            let used: serde_json::Map<String, Value> = p
                .used
                .iter()
                .map(|u| (u.port.to_string(), json!({})))
                .collect();
            ok(json!({ "ports": {
                "StartPort": p.start, "EndPort": p.end, "AvailableCount": p.free, "UsedPortSet": used,
            }}))
        }
        Err(e) => fail(500, Some(&e)),
    }
}
