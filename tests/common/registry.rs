//! Debian's `docker-registry`, started by a test on a free loopback port with its own config.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

pub struct Registry {
    pub child: Child,
    pub port: u16,
    pub _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker-registry serve` on a free loopback port; with `auth`, htpasswd (bcrypt) of it.
    pub fn start(auth: Option<(&str, &str)>, deletes: bool) -> Registry {
        Registry::start_on(free_port(), auth, deletes)
    }

    pub fn start_on(port: u16, auth: Option<(&str, &str)>, deletes: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: {deletes}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root = dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gpudeck-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed().as_secs() < 20, "the registry did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        r
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
