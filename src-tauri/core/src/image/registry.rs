//! A thin Registry v2 / OCI distribution client on reqwest: repositories (paged by `Link`), tags,
//! manifest digest and size, created time, delete by digest.
//!
//! Credentials go only to the registry's own origin (scheme, host, port) and to the token realm
//! it names; redirects are followed by hand, without credentials when they leave the origin (a
//! blob on object storage). Extra CAs come from `/etc/docker/certs.d/<host>/*.crt`, as Docker's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Every manifest media type GPU Deck reads, for `Accept` (a registry answers a HEAD without it
/// with a schema-1 digest, or none).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

const PAGE: usize = 100;
const MAX_PAGES: usize = 1000;

/// Where a registry is and who GPU Deck is there.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base: Url,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// A registry URL as typed: `https://reg.lab`, `reg.lab:5000`, `127.0.0.1:5000`. Without a
/// scheme: plain HTTP for loopback addresses (as Docker allows them), HTTPS otherwise.
pub fn parse_url(input: &str) -> Result<Url> {
    let bad = |reason: &str| CoreError::InvalidInput {
        what: format!("registry URL \"{}\"", input.escape_debug()),
        reason: reason.to_string(),
    };
    let s = input.trim();
    let s = if s.contains("://") {
        s
    } else {
        s.trim_end_matches('/')
    };
    if s.is_empty() {
        return Err(bad(
            "it is empty; type one such as https://registry.lab or 127.0.0.1:5000",
        ));
    }
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        let host = s.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host.starts_with("127.") || s.starts_with("[::1]");
        format!("{}://{s}", if loopback { "http" } else { "https" })
    };
    let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// registries are spoken to"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad("a registry is a host (and port), without a path"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "put the user and password in their own fields, not in the URL",
        ));
    }
    Ok(url)
}

/// The `host[:port]` Docker uses for a registry URL (what image references start with).
pub fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// What `registry info` shows of one tag.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct RemoteImageInfo {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// Compressed bytes in the registry (config + layers; for an index, the sum of its
    /// platforms'), not what it takes on disk once pulled.
    #[ts(type = "number")]
    pub size: u64,
    pub created: Option<String>,
    pub platforms: Vec<RemotePlatform>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct RemotePlatform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub digest: String,
    #[ts(type = "number")]
    pub size: u64,
    pub created: Option<String>,
}

/// What a delete removed: the manifest by digest, and with it every tag that pointed at it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct RemoteDeleted {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
}

pub struct RegistryClient {
    ep: Endpoint,
    name: String,
    http: reqwest::Client,
    /// Bearer tokens by scope, for registries with a token server.
    tokens: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `Link: </v2/_catalog?last=x&n=100>; rel="next"` → the next URL.
pub fn next_link(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let part = part.trim();
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            return None;
        }
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        base.join(&part[start..end]).ok()
    })
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn challenge(h: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            }
        } else {
            match v.find(',') {
                Some(i) => (&v[..i], &v[i..]),
                None => (v, ""),
            }
        };
        params.insert(k, val.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    (scheme.to_lowercase(), params)
}

impl RegistryClient {
    pub fn new(name: &str, ep: Endpoint) -> Result<RegistryClient> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("gpudeck/", env!("CARGO_PKG_VERSION")));
        let certs = std::path::Path::new("/etc/docker/certs.d").join(host_of(&ep.base));
        if let Ok(rd) = std::fs::read_dir(&certs) {
            for f in rd.flatten() {
                if f.path().extension().is_some_and(|e| e == "crt") {
                    if let Some(c) = std::fs::read(f.path())
                        .ok()
                        .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
                    {
                        b = b.add_root_certificate(c);
                    }
                }
            }
        }
        let http = b.build().map_err(|e| CoreError::Registry {
            registry: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(RegistryClient {
            ep,
            name: name.to_string(),
            http,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn err(&self, reason: impl Into<String>) -> CoreError {
        CoreError::Registry {
            registry: format!("\"{}\" ({})", self.name, self.ep.base),
            reason: reason.into(),
        }
    }

    fn net(&self, e: reqwest::Error) -> CoreError {
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason = format!("{reason}: {s}");
            src = s.source();
        }
        self.err(format!("{reason}. Check that it is reachable from this machine and that the URL (http or https) is right"))
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        let u = self.ep.user.as_deref()?;
        let p = self.ep.password.as_deref().unwrap_or_default();
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ))
    }

    /// One request with the credentials this origin should get, following redirects by hand.
    async fn send_once(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut url = url;
        for _ in 0..5 {
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = auth.filter(|_| same_origin(&url, &self.ep.base)) {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.net(e))?;
            if resp.status().is_redirection() {
                if let Some(to) = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                {
                    url = to;
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(self.err("too many redirects"))
    }

    async fn token(&self, params: &HashMap<String, String>, scope: &str) -> Result<String> {
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
        {
            return Ok(t.clone());
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| self.err("its token challenge names no realm"))?;
        let mut url = Url::parse(realm).map_err(|e| self.err(format!("its token realm: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = params.get("service") {
                q.append_pair("service", s);
            }
            let scope = params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| scope.to_string());
            if !scope.is_empty() {
                q.append_pair("scope", &scope);
            }
        }
        let mut req = self.http.get(url);
        if let Some(b) = self.basic() {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| self.net(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(CoreError::RegistryAuth {
                registry: self.ep.base.to_string(),
                reason: format!("its token server answered {}", resp.status()),
            });
        }
        let t: TokenReply = resp
            .json()
            .await
            .map_err(|e| self.err(format!("its token server's answer: {e}")))?;
        let t = t
            .token
            .or(t.access_token)
            .ok_or_else(|| self.err("its token server gave no token"))?;
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_string(), t.clone());
        Ok(t)
    }

    /// A request with authentication as the registry asks for it (Basic, or a Bearer token for
    /// `scope`). A 401 after that is an auth error.
    async fn send(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        scope: &str,
    ) -> Result<reqwest::Response> {
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .map(|t| format!("Bearer {t}"));
        let first = cached.or_else(|| self.basic());
        let resp = self
            .send_once(method.clone(), url.clone(), accept, first.as_deref())
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let www = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (kind, params) = challenge(&www);
        let auth = match kind.as_str() {
            "bearer" => {
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(scope);
                format!("Bearer {}", self.token(&params, scope).await?)
            }
            _ => match self.basic() {
                Some(b) if first.as_deref() != Some(b.as_str()) => b,
                _ => {
                    return Err(CoreError::RegistryAuth {
                        registry: self.ep.base.to_string(),
                        reason: if self.ep.user.is_some() {
                            "401 Unauthorized: wrong user name or password".into()
                        } else {
                            "401 Unauthorized: it wants a user name and password".into()
                        },
                    })
                }
            },
        };
        let resp = self.send_once(method, url, accept, Some(&auth)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(CoreError::RegistryAuth {
                registry: self.ep.base.to_string(),
                reason: "401 Unauthorized: wrong user name or password".into(),
            });
        }
        Ok(resp)
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.ep.base.join(path).map_err(|e| self.err(e.to_string()))
    }

    async fn fail(&self, resp: reqwest::Response, what: &str) -> CoreError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("errors")?.as_array()?.first().map(|e| {
                    format!(
                        "{} {}",
                        e.get("code").and_then(|c| c.as_str()).unwrap_or_default(),
                        e.get("message")
                            .and_then(|c| c.as_str())
                            .unwrap_or_default()
                    )
                })
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        self.err(format!("{what}: {status} {}", detail.trim()))
    }

    /// Checks that the registry speaks v2 and takes the credentials.
    pub async fn ping(&self) -> Result<()> {
        let resp = self.send(Method::GET, self.url("/v2/")?, None, "").await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.fail(resp, "GET /v2/").await)
    }

    async fn paged(&self, first: Url, key: &str, scope: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                break;
            }
            let resp = self.send(Method::GET, url.clone(), None, scope).await?;
            if resp.status() == StatusCode::FORBIDDEN || resp.status() == StatusCode::UNAUTHORIZED {
                return Err(CoreError::Forbidden(format!(
                    "The registry \"{}\" does not let this user list {key} (the token lacks the scope). Type the repository by hand instead.",
                    self.name
                )));
            }
            if !resp.status().is_success() {
                return Err(self.fail(resp, &format!("listing {key}")).await);
            }
            next = next_link(&url, resp.headers());
            let v: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| self.err(format!("its {key} list: {e}")))?;
            out.extend(
                v.get(key)
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string)),
            );
        }
        Ok(out)
    }

    /// Every repository (scope `registry:catalog:*`).
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let url = self.url(&format!("/v2/_catalog?n={PAGE}"))?;
        self.paged(url, "repositories", "registry:catalog:*").await
    }

    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let url = self.url(&format!("/v2/{repo}/tags/list?n={PAGE}"))?;
        let scope = format!("repository:{repo}:pull");
        match self.paged(url, "tags", &scope).await {
            Err(CoreError::Registry { reason, .. }) if reason.contains("404") => {
                Err(self.err(format!("it has no repository \"{repo}\"")))
            }
            r => r,
        }
    }

    /// The digest a tag (or digest) points at, by HEAD with the full Accept list.
    pub async fn digest(&self, repo: &str, reference: &str) -> Result<(String, String)> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let scope = format!("repository:{repo}:pull");
        let resp = self
            .send(Method::HEAD, url, Some(MANIFEST_ACCEPT), &scope)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.err(format!("it has no {repo}:{reference}")));
        }
        if !resp.status().is_success() {
            return Err(self.fail(resp, "reading the manifest").await);
        }
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let digest = h("docker-content-digest")
            .ok_or_else(|| self.err("its answer had no Docker-Content-Digest"))?;
        Ok((digest, h("content-type").unwrap_or_default()))
    }

    async fn get_json(
        &self,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<serde_json::Value> {
        let url = self.url(&format!("/v2/{repo}/{path}"))?;
        let scope = format!("repository:{repo}:pull");
        let resp = self.send(Method::GET, url, accept, &scope).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &format!("GET {path}")).await);
        }
        resp.json()
            .await
            .map_err(|e| self.err(format!("{path}: {e}")))
    }

    /// (size, created, os, architecture) of one image manifest.
    async fn manifest_facts(
        &self,
        repo: &str,
        manifest: &serde_json::Value,
    ) -> Result<(u64, Option<String>, String, String)> {
        let size = |v: &serde_json::Value| v.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
        let config = manifest.get("config").cloned().unwrap_or_default();
        let mut total = size(&config);
        for l in manifest
            .get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            total += size(l);
        }
        let (mut created, mut os, mut arch) = (None, String::new(), String::new());
        if let Some(d) = config.get("digest").and_then(|d| d.as_str()) {
            if let Ok(c) = self.get_json(repo, &format!("blobs/{d}"), None).await {
                created = c
                    .get("created")
                    .and_then(|x| x.as_str())
                    .map(str::to_string);
                os = c
                    .get("os")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
                arch = c
                    .get("architecture")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
            }
        }
        Ok((total, created, os, arch))
    }

    pub async fn info(&self, repo: &str, tag: &str) -> Result<RemoteImageInfo> {
        let (digest, media_type) = self.digest(repo, tag).await?;
        let top = self
            .get_json(repo, &format!("manifests/{digest}"), Some(MANIFEST_ACCEPT))
            .await?;
        let media = top
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or(media_type);
        let mut platforms = Vec::new();
        let (size, created);
        if let Some(list) = top.get("manifests").and_then(|m| m.as_array()) {
            let mut sum = 0;
            let mut newest: Option<String> = None;
            for m in list {
                let Some(d) = m.get("digest").and_then(|d| d.as_str()) else {
                    continue;
                };
                let p = m.get("platform").cloned().unwrap_or_default();
                let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
                // Attestations ("unknown/unknown") are not platforms.
                if s("os").as_deref() == Some("unknown") {
                    continue;
                }
                let one = self
                    .get_json(repo, &format!("manifests/{d}"), Some(MANIFEST_ACCEPT))
                    .await?;
                let (sz, cr, _, _) = self.manifest_facts(repo, &one).await?;
                sum += sz;
                if cr > newest {
                    newest.clone_from(&cr);
                }
                platforms.push(RemotePlatform {
                    os: s("os").unwrap_or_default(),
                    architecture: s("architecture").unwrap_or_default(),
                    variant: s("variant"),
                    digest: d.to_string(),
                    size: sz,
                    created: cr,
                });
            }
            size = sum;
            created = newest;
        } else {
            let (sz, cr, os, arch) = self.manifest_facts(repo, &top).await?;
            platforms.push(RemotePlatform {
                os,
                architecture: arch,
                variant: None,
                digest: digest.clone(),
                size: sz,
                created: cr.clone(),
            });
            size = sz;
            created = cr;
        }
        Ok(RemoteImageInfo {
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest,
            media_type: media,
            size,
            created,
            platforms,
        })
    }

    /// Deletes the manifest a tag points at, by digest; every tag of that digest goes with it.
    pub async fn delete(&self, repo: &str, tag: &str) -> Result<RemoteDeleted> {
        let (digest, _) = self.digest(repo, tag).await?;
        let mut tags = Vec::new();
        for t in self.tags(repo).await.unwrap_or_default() {
            if t == tag || self.digest(repo, &t).await.is_ok_and(|(d, _)| d == digest) {
                tags.push(t);
            }
        }
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"))?;
        let scope = format!("repository:{repo}:delete,pull");
        let resp = self
            .send(Method::DELETE, url, Some(MANIFEST_ACCEPT), &scope)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(RemoteDeleted {
                repository: repo.to_string(),
                digest,
                tags,
            }),
            StatusCode::METHOD_NOT_ALLOWED => Err(self.err(
                "405: deletes are disabled on this registry. Its admin enables them (storage: delete: enabled: true in the registry's config); the disk frees only after its garbage collection",
            )),
            _ => Err(self.fail(resp, "DELETE manifest").await),
        }
    }
}

/// Whether a header value is safe to log: never one with credentials.
pub fn redact(h: &HeaderValue) -> &str {
    let s = h.to_str().unwrap_or_default();
    if s.starts_with("Basic ") || s.starts_with("Bearer ") {
        "[redacted]"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls() {
        assert_eq!(
            parse_url("127.0.0.1:5000").unwrap().as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            parse_url("localhost:5000/").unwrap().as_str(),
            "http://localhost:5000/"
        );
        assert_eq!(parse_url("reg.lab").unwrap().as_str(), "https://reg.lab/");
        assert_eq!(parse_url("http://reg.lab:5000").unwrap().scheme(), "http");
        assert_eq!(host_of(&parse_url("reg.lab:5000").unwrap()), "reg.lab:5000");
        assert_eq!(host_of(&parse_url("https://reg.lab").unwrap()), "reg.lab");
        for bad in [
            "",
            "ftp://x",
            "https://reg.lab/path",
            "https://u:p@reg.lab",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_headers_page() {
        let base = Url::parse("http://r:5000/v2/_catalog?n=2").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static("</v2/_catalog?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&base, &h).unwrap().as_str(),
            "http://r:5000/v2/_catalog?last=b&n=2"
        );
        assert!(next_link(&base, &HeaderMap::new()).is_none());
    }

    #[test]
    fn bearer_challenges() {
        let (k, p) = challenge(
            r#"Bearer realm="https://auth.lab/token",service="registry.lab",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(k, "bearer");
        assert_eq!(p["realm"], "https://auth.lab/token");
        assert_eq!(p["service"], "registry.lab");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (k, p) = challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(k, "basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let base = Url::parse("http://127.0.0.1:5000/").unwrap();
        assert!(same_origin(
            &base,
            &Url::parse("http://127.0.0.1:5000/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &base,
            &Url::parse("http://127.0.0.1:5001/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &base,
            &Url::parse("https://127.0.0.1:5000/v2/x").unwrap()
        ));
        assert!(!same_origin(
            &base,
            &Url::parse("http://s3.example/blob").unwrap()
        ));
        assert_eq!(redact(&HeaderValue::from_static("Basic abc")), "[redacted]");
    }
}
