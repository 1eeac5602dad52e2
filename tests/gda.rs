//! gpu-docker-api's REST API, served by gpudeckd (`--gda-listen`), driven over HTTP as its
//! scripts do, against the real engine: the documented flow, errors with its codes, tokens
//! (none → 401; another member's cannot stop it), volumes, resources, TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::registry::free_port;
use common::*;
use serde_json::{json, Value};

struct Api {
    fake: FakeNvml,
    base: String,
}

fn curl(args: &[&str]) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code.trim().parse().unwrap_or(0), v)
}

impl Api {
    fn start(gpus: usize) -> Api {
        let fake = FakeNvml::new(gpus);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        fake.start_service_args(&[], &["--gda-listen", &addr]);
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(t0.elapsed().as_secs() < 20, "the REST API did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Api {
            fake,
            base: format!("http://{addr}"),
        }
    }

    fn token(&self, user: &str) -> String {
        let out = self.fake.cli(&[
            "token", "create", "--user", user, "--name", "gda test", "--json",
        ]);
        json(&out)["token"].as_str().unwrap().to_string()
    }

    /// (HTTP status, body) of METHOD PATH with the token and a JSON body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut a = vec![
            "-X",
            method,
            url.as_str(),
            "-H",
            "Content-Type: application/json",
        ];
        if let Some(h) = &auth {
            a.extend(["-H", h.as_str()]);
        }
        if let Some(b) = body {
            a.extend(["--data-binary", b]);
        }
        curl(&a)
    }

    /// The envelope of a call answered with HTTP 200.
    fn env(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let b = body.map(|b| b.to_string());
        let (status, v) = self.call(method, path, Some(token), b.as_deref());
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let v = self.env(method, path, token, body);
        assert_eq!(v["code"], 200, "{method} {path}: {v}");
        assert_eq!(v["msg"], "Success");
        v["data"].clone()
    }

    fn code(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> u64 {
        let v = self.env(method, path, token, body);
        assert!(v["data"].is_null(), "{v}");
        v["code"].as_u64().unwrap()
    }
}

fn ensure_users() {
    for (u, g) in [("alice", "gpudeck"), ("bob", "gpudeck")] {
        let _ = Command::new("groupadd")
            .args(["-f", "--system", g])
            .output();
        if !Command::new("id").arg(u).output().unwrap().status.success() {
            let out = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", "-G", g, u])
                .output()
                .unwrap();
            assert!(out.status.success(), "useradd {u}");
        }
    }
}

#[test]
fn the_documented_flow_over_http_with_tokens() {
    ensure_users();
    let api = Api::start(2);
    let alice = api.token("alice");
    let bob = api.token("bob");
    let n = unique("gda").replace('-', "");
    assert_eq!(api.call("GET", "/ping", None, None).1["message"], "pong");

    // No token, or a bad one: 401, and nothing happens.
    let run_body = json!({
        "imageName": TEST_IMAGE, "replicaSetName": n, "gpuCount": 1,
        "binds": [{ "src": format!("/home/alice/{n}"), "dest": "/data" }],
        "env": ["USER=foo"], "cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
        "containerPorts": ["22", "443"],
    });
    let (status, v) = api.call(
        "POST",
        "/api/v1/replicaSet",
        None,
        Some(&run_body.to_string()),
    );
    assert_eq!(status, 401, "{v}");
    let (status, _) = api.call(
        "POST",
        "/api/v1/replicaSet",
        Some("gdk_nope"),
        Some(&run_body.to_string()),
    );
    assert_eq!(status, 401);
    assert_eq!(
        api.code("GET", &format!("/api/v1/replicaSet/{n}"), &alice, None),
        1016
    );

    // Run → n-1, with GPUs, binds, env, cmd and container ports.
    let dir = format!("/home/alice/{n}");
    std::fs::create_dir_all(&dir).unwrap();
    let au: u32 = String::from_utf8_lossy(
        &Command::new("id")
            .args(["-u", "alice"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    std::os::unix::fs::chown(&dir, Some(au), Some(au)).unwrap();
    let d = api.ok("POST", "/api/v1/replicaSet", &alice, Some(run_body.clone()));
    assert_eq!(d["name"], format!("{n}-1"));
    let rs = format!("/api/v1/replicaSet/{n}");
    let info = api.ok("GET", &rs, &alice, None)["Info"].clone();
    assert_eq!(info["containerName"], format!("{n}-1"));
    assert_eq!(
        info["hostConfig"]["DeviceRequests"][0]["DeviceIDs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(info["hostConfig"]["Binds"][0], format!("{dir}:/data"));
    assert!(info["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "USER=foo"));
    let host_port = info["hostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .to_string();

    // Errors with gpu-docker-api's codes.
    assert_eq!(
        api.code("POST", "/api/v1/replicaSet", &alice, Some(run_body.clone())),
        1008
    );
    let mut dash = run_body.clone();
    dash["replicaSetName"] = json!("a-b");
    assert_eq!(
        api.code("POST", "/api/v1/replicaSet", &alice, Some(dash)),
        1003
    );
    let mut neg = run_body.clone();
    neg["replicaSetName"] = json!("neg");
    neg["gpuCount"] = json!(-1);
    assert_eq!(
        api.code("POST", "/api/v1/replicaSet", &alice, Some(neg)),
        1012
    );
    assert_eq!(
        api.code(
            "POST",
            "/api/v1/replicaSet",
            &alice,
            Some(json!({ "replicaSetName": "x" }))
        ),
        1001
    );
    let (s, v) = api.call(
        "POST",
        "/api/v1/replicaSet",
        Some(&alice),
        Some("{not json"),
    );
    assert_eq!((s, v["code"].as_u64()), (200, Some(1000)));
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        big.path(),
        format!("{{\"imageName\":\"{}\"}}", "x".repeat(200_000)),
    )
    .unwrap();
    let at = format!("@{}", big.path().display());
    let (s, _) = api.call("POST", "/api/v1/replicaSet", Some(&alice), Some(&at));
    assert_eq!(s, 413, "bodies are capped");

    // Patch the GPU count → n-2; rollback to 1 → n-3; history newest first.
    let d = api.ok(
        "PATCH",
        &rs,
        &alice,
        Some(json!({ "gpuPatch": { "gpuCount": 2 } })),
    );
    assert_eq!(d["containerName"], format!("{n}-2"));
    let gpus = api.ok("GET", "/api/v1/resources/gpus", &alice, None)["gpus"].clone();
    assert_eq!(
        gpus.as_object()
            .unwrap()
            .values()
            .filter(|v| *v == 1)
            .count(),
        2
    );
    assert_eq!(
        api.code(
            "PATCH",
            &format!("{rs}/rollback"),
            &alice,
            Some(json!({ "version": 2 }))
        ),
        1022
    );
    assert_eq!(
        api.code(
            "PATCH",
            &format!("{rs}/rollback"),
            &alice,
            Some(json!({ "version": -1 }))
        ),
        1020
    );
    let d = api.ok(
        "PATCH",
        &format!("{rs}/rollback"),
        &alice,
        Some(json!({ "version": 1 })),
    );
    assert_eq!(d["containerName"], format!("{n}-3"));
    let hist = api.ok("GET", &format!("{rs}/history"), &alice, None)["history"].clone();
    let versions: Vec<u64> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![3, 2, 1]);
    assert_eq!(
        hist[0]["status"]["hostConfig"]["DeviceRequests"][0]["DeviceIDs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Count and Options are required by gpu-docker-api's API document: kept, as Docker writes
    // them for requests by id.
    let dr = &hist[0]["status"]["hostConfig"]["DeviceRequests"][0];
    assert_eq!(dr["Count"], 0, "{dr}");
    assert!(dr.get("Options").is_some_and(|o| o.is_null()), "{dr}");
    assert_eq!(dr["Capabilities"], json!([["gpu"]]), "{dr}");

    // GPU and port resources reflect it.
    let gpus = api.ok("GET", "/api/v1/resources/gpus", &alice, None)["gpus"].clone();
    assert_eq!(gpus.as_object().unwrap().len(), 2);
    assert_eq!(
        gpus.as_object()
            .unwrap()
            .values()
            .filter(|v| *v == 1)
            .count(),
        1
    );
    let info = api.ok("GET", &rs, &alice, None)["Info"].clone();
    let host_port3 = info["hostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .to_string();
    let ports = api.ok("GET", "/api/v1/resources/ports", &alice, None)["ports"].clone();
    assert!(
        ports["UsedPortSet"].get(&host_port3).is_some(),
        "{ports} {host_port}"
    );
    assert!(ports["AvailableCount"].as_u64().unwrap() > 0);

    // Another member's token cannot stop it.
    let (s, v) = api.call("PATCH", &format!("{rs}/stop"), Some(&bob), None);
    assert_eq!((s, v["code"].as_u64()), (403, Some(403)), "{v}");

    // Stop frees the GPU; continue; restart → n-4; execute; commit; delete.
    assert!(api
        .ok("PATCH", &format!("{rs}/stop"), &alice, None)
        .is_null());
    let gpus = api.ok("GET", "/api/v1/resources/gpus", &alice, None)["gpus"].clone();
    assert!(
        gpus.as_object().unwrap().values().all(|v| *v == 0),
        "{gpus}"
    );
    api.ok("PATCH", &format!("{rs}/continue"), &alice, None);
    let d = api.ok("PATCH", &format!("{rs}/restart"), &alice, None);
    assert_eq!(d["containerName"], format!("{n}-4"));
    let d = api.ok(
        "POST",
        &format!("{rs}/execute"),
        &alice,
        Some(json!({ "cmd": ["sh", "-c", "echo hi; echo err >&2"] })),
    );
    assert_eq!(d["stdout"], "hi\nerr\n");
    let d = api.ok(
        "POST",
        &format!("{rs}/execute"),
        &alice,
        Some(json!({ "workDir": "/tmp", "cmd": ["pwd"] })),
    );
    assert_eq!(d["stdout"], "/tmp\n");
    let img = format!("alice/gda{n}:v1");
    let d = api.ok(
        "POST",
        &format!("{rs}/commit"),
        &alice,
        Some(json!({ "newImageName": img })),
    );
    assert_eq!(d["imageName"], img.as_str());
    docker_ok(&["image", "inspect", &img]);
    // A member commits only under her own name: a refusal of who may is HTTP 403.
    let (st, v) = api.call(
        "POST",
        &format!("{rs}/commit"),
        Some(&alice),
        Some(&json!({ "newImageName": "shared:v1" }).to_string()),
    );
    assert_eq!((st, v["code"].as_u64()), (403, Some(403)), "{v}");
    api.ok("PATCH", &format!("{rs}/pause"), &alice, None);
    assert!(api.ok("DELETE", &rs, &alice, None).is_null());
    assert_eq!(api.code("GET", &rs, &alice, None), 1016);
    assert_eq!(
        api.code("GET", &format!("{rs}/history"), &alice, None),
        1017
    );
    let _ = docker(&["rmi", &img]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn volumes_over_http() {
    ensure_users();
    let api = Api::start(0);
    let alice = api.token("alice");
    let v = unique("gdv").replace('-', "");
    let path = format!("/api/v1/volumes/{v}");
    assert_eq!(
        api.code(
            "POST",
            "/api/v1/volumes",
            &alice,
            Some(json!({ "name": "a-b", "size": "20MB" }))
        ),
        1031
    );
    assert_eq!(
        api.code(
            "POST",
            "/api/v1/volumes",
            &alice,
            Some(json!({ "name": "/a", "size": "20MB" }))
        ),
        1032
    );
    let d = api.ok(
        "POST",
        "/api/v1/volumes",
        &alice,
        Some(json!({ "name": v, "size": "20MB" })),
    );
    assert_eq!(d, json!({ "name": format!("{v}-1"), "size": "20MB" }));
    assert_eq!(
        api.code(
            "POST",
            "/api/v1/volumes",
            &alice,
            Some(json!({ "name": v, "size": "20MB" }))
        ),
        1026
    );
    // Sizes compare as numbers: "20mb" is the same size.
    assert_eq!(
        api.code(
            "PATCH",
            &format!("{path}/size"),
            &alice,
            Some(json!({ "size": "20mb" }))
        ),
        1028
    );
    assert_eq!(
        api.code(
            "PATCH",
            &format!("{path}/size"),
            &alice,
            Some(json!({ "size": "30XB" }))
        ),
        1029
    );
    assert_eq!(
        api.code("PATCH", &format!("{path}/size"), &alice, Some(json!({}))),
        1029
    );
    let d = api.ok(
        "PATCH",
        &format!("{path}/size"),
        &alice,
        Some(json!({ "size": "30MB" })),
    );
    assert_eq!(d, json!({ "name": format!("{v}-2"), "size": "30MB" }));
    let info = api.ok("GET", &path, &alice, None)["Info"].clone();
    assert_eq!(info["opt"]["Name"], format!("{v}-2"));
    assert_eq!(info["opt"]["DriverOpts"]["size"], "30MB");
    let hist = api.ok("GET", &format!("{path}/history"), &alice, None)["history"].clone();
    let versions: Vec<u64> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert!(api.ok("DELETE", &path, &alice, None).is_null());
    assert_eq!(api.code("GET", &path, &alice, None), 1033);
    assert_eq!(api.code("DELETE", &path, &alice, None), 1025);
}

#[test]
fn beyond_loopback_needs_tls_and_tls_serves() {
    let fake = FakeNvml::new(0);
    // Refused before anything starts, with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_gpudeckd"))
        .args([
            "--socket",
            "/nonexistent/x.sock",
            "--gda-listen",
            "0.0.0.0:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs TLS"),
        "{out:?}"
    );
    // With a certificate it serves HTTPS.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    fake.start_service_args(
        &[],
        &[
            "--gda-listen",
            &addr,
            "--gda-tls-cert",
            cert.to_str().unwrap(),
            "--gda-tls-key",
            key.to_str().unwrap(),
        ],
    );
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(t0.elapsed().as_secs() < 20);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (s, v) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        &format!("https://localhost:{port}/ping"),
    ]);
    assert_eq!((s, v["message"].as_str()), (200, Some("pong")));
    let (s, _) = curl(&[&format!("http://127.0.0.1:{port}/ping")]);
    assert_ne!(s, 200, "no clear text on the TLS port");
}
