//! The servers tests and benchmarks run against, on loopback: moto's S3 server and the
//! JavaScript IPFS node. Each is stopped when its guard drops, even on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::cmd::{root, run, xtask_dir};

/// moto's S3 server (from PyPI, in the xtask venv) on loopback with one bucket, in memory;
/// stopped when dropped.
pub(crate) struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    /// The bucket the server is started with.
    pub(crate) const BUCKET: &'static str = "hamt-test";

    pub(crate) fn start(python: &Path) -> Result<Self> {
        let bin = python.with_file_name("moto_server");
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let server = Self { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
        // Ready when it answers; creating the bucket is the first request that must succeed.
        while server
            .request("PUT", &format!("/{}", Self::BUCKET))
            .is_err()
        {
            if std::time::Instant::now() > deadline {
                return Err("the S3 server did not start within 60 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!(
            "xtask: S3 server (moto) on {} with bucket {}",
            server.endpoint(),
            Self::BUCKET
        );
        Ok(server)
    }

    /// One HTTP/1.1 request with an empty body; the status line must say 2xx.
    fn request(&self, method: &str, path: &str) -> Result<()> {
        use std::io::{Read as _, Write as _};
        let mut conn =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply).map_err(|e| e.to_string())?;
        match reply.split_whitespace().nth(1) {
            Some(code) if code.starts_with('2') => Ok(()),
            other => Err(format!("{method} {path}: {other:?}")),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server for the tests, and credentials moto accepts (any will do).
    pub(crate) fn set_env(&self, cmd: &mut Command) {
        cmd.env("HAMT_TEST_S3_ENDPOINT", self.endpoint())
            .env("HAMT_TEST_S3_BUCKET", Self::BUCKET)
            .env("AWS_ACCESS_KEY_ID", "hamt-test")
            .env("AWS_SECRET_ACCESS_KEY", "hamt-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback (bound, then released for the service to take).
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Where the IPFS node is installed (from `xtask/ipfs-node`'s lockfile), for tests that start
/// nodes of their own.
pub(crate) fn node_dir() -> PathBuf {
    xtask_dir().join("ipfs-node")
}

/// The JavaScript IPFS node (npm `ipfs`, pinned in xtask/ipfs-node) on loopback, offline,
/// with a temporary repo; stopped by SIGTERM when dropped.
pub(crate) struct IpfsNode {
    child: std::process::Child,
    api: u16,
    gateway: u16,
    repo: PathBuf,
}

impl IpfsNode {
    /// Installs the node from npm into [`node_dir`], again only when the lockfile changed.
    pub(crate) fn install() -> Result<PathBuf> {
        let dir = node_dir();
        let source = root().join("xtask/ipfs-node");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = fs::read_to_string(source.join("package-lock.json"))
            .map_err(|e| format!("xtask/ipfs-node/package-lock.json: {e}"))?;
        for file in ["package.json", "package-lock.json", "node.mjs"] {
            let to = dir.join(file);
            let _ = fs::remove_file(&to);
            fs::copy(source.join(file), &to).map_err(|e| format!("copy {file}: {e}"))?;
        }
        let stamp = dir.join("node_modules/.installed-lock");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
            eprintln!("xtask: installing the IPFS test node from npm (a few minutes, once)");
            // `npm ci` refuses this lockfile (an optional git dependency); install follows it.
            run(Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--omit-lockfile-registry-resolved",
                    "--prefix",
                ])
                .arg(&dir))?;
            fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))?;
        }
        Ok(dir)
    }

    /// Installs the node if needed and starts it.
    pub(crate) fn start() -> Result<Self> {
        let dir = Self::install()?;
        let (api, gateway) = (free_port()?, free_port()?);
        let repo = std::env::temp_dir().join(format!("hamt-ipfs-repo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&repo);
        let child = Command::new("node")
            .arg(dir.join("node.mjs"))
            .arg(&repo)
            .arg(api.to_string())
            .arg(gateway.to_string())
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start node (Node.js is required): {e}"))?;
        let node = Self {
            child,
            api,
            gateway,
            repo,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", gateway)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", api)).is_err()
        {
            if std::time::Instant::now() > deadline {
                return Err("the IPFS test node did not start within 90 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!(
            "xtask: IPFS test node on {} (gateway {})",
            node.rpc_url(),
            node.gateway_url()
        );
        Ok(node)
    }

    pub(crate) fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    pub(crate) fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway)
    }
}

impl Drop for IpfsNode {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.repo);
    }
}
