//! Image references, by the Docker/OCI distribution grammar (distribution/reference):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component ( "/" path-component )*
//! domain     := host [ ":" port ]          (the first component is one when it holds "." or ":",
//!                                          or is "localhost")
//! path-comp  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex          (sha256: 64 lower-case hex digits)
//! ```
//!
//! One parser for everything a user types or pastes; what it refuses is refused with the reason
//! before anything is sent anywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// The registry Docker uses for names without a domain.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference. `domain` is what was typed (None: Docker Hub), `path` the repository
/// path (`library/` is not added: `ubuntu` stays `ubuntu`, as Docker shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    pub domain: Option<String>,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn bad(input: &str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        what: format!("image reference \"{}\"", input.escape_debug()),
        reason: reason.into(),
    }
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ ( separator [a-z0-9]+ )*, separator := [._] | "__" | "-"+
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[sep..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok || i == b.len() {
            return false;
        }
    }
}

fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn check_domain(input: &str, d: &str) -> Result<()> {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // [IPv6]:port
        let end = rest
            .find(']')
            .ok_or_else(|| bad(input, "an IPv6 address must be closed with ]"))?;
        let ip = &rest[..end];
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(input, format!("\"{ip}\" is not an IPv6 address")));
        }
        (None, rest[end + 1..].strip_prefix(':'))
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(host) = host {
        if !host.split('.').all(is_domain_component) {
            return Err(bad(
                input,
                format!("\"{host}\" is not a registry host name (letters, digits, - and . only)"),
            ));
        }
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(bad(input, format!("\"{p}\" is not a port number")));
        }
    }
    Ok(())
}

fn check_tag(input: &str, t: &str) -> Result<()> {
    if t.is_empty() {
        return Err(bad(
            input,
            "the tag after ':' is empty; leave out the ':' to mean latest",
        ));
    }
    let b = t.as_bytes();
    let ok = b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(bad(
            input,
            format!(
                "\"{t}\" is not a tag: up to 128 letters, digits, _ . -, not starting with . or -"
            ),
        ));
    }
    Ok(())
}

fn check_digest(input: &str, d: &str) -> Result<()> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| bad(input, "a digest is algorithm:hex, such as sha256:…"))?;
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '-', '_']).all(|c| {
            c.as_bytes()
                .first()
                .is_some_and(|f| f.is_ascii_alphabetic())
                && c.bytes().all(|x| x.is_ascii_alphanumeric())
        });
    if !alg_ok {
        return Err(bad(input, format!("\"{alg}\" is not a digest algorithm")));
    }
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit());
    if !hex_ok
        || (alg == "sha256" && (hex.len() != 64 || hex.bytes().any(|c| c.is_ascii_uppercase())))
    {
        return Err(bad(
            input,
            format!("\"{d}\" is not a digest (sha256: 64 lower-case hex digits)"),
        ));
    }
    Ok(())
}

impl ImageRef {
    /// Parses what a user typed or pasted. Leading and trailing blanks are not part of it.
    pub fn parse(input: &str) -> Result<ImageRef> {
        let s = input.trim();
        if s.is_empty() {
            return Err(bad(input, "it is empty; type one such as ubuntu:22.04"));
        }
        if s.starts_with('-') {
            return Err(bad(
                input,
                "it starts with '-', which would read as an option",
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                input,
                format!("it holds {c:?}; a reference has no blanks"),
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(input, d)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        if rest.is_empty() {
            return Err(bad(input, "the name before '@' is empty"));
        }
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                let t = &rest[i + 1..];
                check_tag(input, t)?;
                (&rest[..i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad(
                input,
                "the name before ':' is empty (\":latest\" names no image)",
            ));
        }
        if name.len() > 255 {
            return Err(bad(input, "the name is longer than 255 characters"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, more))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                check_domain(input, first)?;
                (Some(first.to_string()), more)
            }
            _ => (None, name),
        };
        for comp in path.split('/') {
            if comp.is_empty() {
                return Err(bad(
                    input,
                    "it has an empty path component (\"//\" or a trailing '/')",
                ));
            }
            if comp.bytes().any(|c| c.is_ascii_uppercase()) {
                return Err(bad(
                    input,
                    format!("\"{comp}\" has upper-case letters; repository names are lower-case"),
                ));
            }
            if comp.contains(':') {
                return Err(bad(input, "it has more than one ':' tag separator"));
            }
            if !is_path_component(comp) {
                return Err(bad(
                    input,
                    format!(
                        "\"{comp}\" is not a repository name part: lower-case letters and digits, \
                         joined by one . or _, two _, or dashes"
                    ),
                ));
            }
        }
        Ok(ImageRef {
            domain,
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// The registry host: the typed domain, or Docker Hub.
    pub fn registry(&self) -> &str {
        self.domain.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The repository as the registry knows it (`library/ubuntu` on Docker Hub).
    pub fn repository(&self) -> String {
        if self.domain.is_none() && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        }
    }

    /// `[domain/]path`, as Docker names it.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The tag, `latest` when none was typed (and no digest pins it).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What is asked of a registry: the digest when given, else the tag.
    pub fn selector(&self) -> String {
        self.digest
            .clone()
            .unwrap_or_else(|| self.tag_or_latest().to_string())
    }

    /// With the default tag filled in when neither a tag nor a digest was typed.
    pub fn normalized(&self) -> ImageRef {
        let mut r = self.clone();
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        r
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// (input, domain, path, tag, digest, registry, repository)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );

    #[test]
    fn accepted_references_parse_into_their_parts() {
        let digest_ref = format!("host:5000/a/b/c@{D}");
        let tag_digest = format!("ubuntu:22.04@{D}");
        // (input, domain, path, tag, digest, registry, repository)
        let cases: Vec<Case> = vec![
            (
                "ubuntu",
                None,
                "ubuntu",
                None,
                None,
                "docker.io",
                "library/ubuntu",
            ),
            (
                "ubuntu:22.04",
                None,
                "ubuntu",
                Some("22.04"),
                None,
                "docker.io",
                "library/ubuntu",
            ),
            (
                "library/ubuntu:latest",
                None,
                "library/ubuntu",
                Some("latest"),
                None,
                "docker.io",
                "library/ubuntu",
            ),
            (
                "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
                None,
                "pytorch/pytorch",
                Some("2.3.0-cuda12.1-cudnn8-runtime"),
                None,
                "docker.io",
                "pytorch/pytorch",
            ),
            (
                "localhost:5000/team/img:v1",
                Some("localhost:5000"),
                "team/img",
                Some("v1"),
                None,
                "localhost:5000",
                "team/img",
            ),
            (
                "localhost/img",
                Some("localhost"),
                "img",
                None,
                None,
                "localhost",
                "img",
            ),
            (
                "nvcr.io/nvidia/pytorch:24.01-py3",
                Some("nvcr.io"),
                "nvidia/pytorch",
                Some("24.01-py3"),
                None,
                "nvcr.io",
                "nvidia/pytorch",
            ),
            (
                &digest_ref,
                Some("host:5000"),
                "a/b/c",
                None,
                Some(D),
                "host:5000",
                "a/b/c",
            ),
            (
                &tag_digest,
                None,
                "ubuntu",
                Some("22.04"),
                Some(D),
                "docker.io",
                "library/ubuntu",
            ),
            (
                "127.0.0.1:5000/x_y__z/a-b---c.d:_T",
                Some("127.0.0.1:5000"),
                "x_y__z/a-b---c.d",
                Some("_T"),
                None,
                "127.0.0.1:5000",
                "x_y__z/a-b---c.d",
            ),
            (
                "[::1]:5000/img:1",
                Some("[::1]:5000"),
                "img",
                Some("1"),
                None,
                "[::1]:5000",
                "img",
            ),
            (
                "  busybox  ",
                None,
                "busybox",
                None,
                None,
                "docker.io",
                "library/busybox",
            ),
        ];
        for (input, domain, path, tag, digest, registry, repository) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain.as_deref(), domain, "{input}");
            assert_eq!(r.path, path, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository(), repository, "{input}");
            // What it prints parses back to itself.
            assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r, "{input}");
        }
        assert_eq!(
            ImageRef::parse("ubuntu").unwrap().normalized().to_string(),
            "ubuntu:latest"
        );
        assert_eq!(ImageRef::parse("ubuntu").unwrap().selector(), "latest");
        let max_tag = format!("img:{}", "a".repeat(128));
        assert!(ImageRef::parse(&max_tag).is_ok());
    }

    #[test]
    fn refused_references_say_why() {
        let long_tag = format!("img:{}", "a".repeat(129));
        let long_name = format!("{}:1", "a".repeat(256));
        let cases: Vec<(&str, &str)> = vec![
            ("", "empty"),
            ("   ", "empty"),
            ("Ubuntu", "upper-case"),
            ("team/MyImage:1", "upper-case"),
            ("ubuntu:", "tag after ':' is empty"),
            (":latest", "name before ':' is empty"),
            ("a/b:c:d", "more than one ':'"),
            ("-ubuntu", "starts with '-'"),
            ("--rm", "starts with '-'"),
            ("ubuntu:-1", "not a tag"),
            ("ubuntu:.x", "not a tag"),
            ("ubuntu:a b", "no blanks"),
            ("ubu ntu", "no blanks"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("a..b", "not a repository name part"),
            ("_a", "not a repository name part"),
            ("a-", "not a repository name part"),
            ("host:port/img", "not a port number"),
            ("host:99999/img", "not a port number"),
            ("x.-y.io/img", "not a registry host"),
            ("img@sha256:abc", "not a digest"),
            ("img@md5", "digest is algorithm:hex"),
            (
                "img@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                "not a digest",
            ),
            (
                "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "before '@' is empty",
            ),
            ("img\u{0}x", "no blanks"),
            (&long_tag, "not a tag"),
            (&long_name, "longer than 255"),
        ];
        for (input, why) in cases {
            match ImageRef::parse(input) {
                Ok(r) => panic!("{input:?} was accepted as {r:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(why), "{input:?}: {msg}");
                    assert_eq!(e.code(), "invalid_input");
                }
            }
        }
    }
}
