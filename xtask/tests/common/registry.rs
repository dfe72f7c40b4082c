//! Loopback servers for tests: a real OCI registry (Debian's `docker-registry`,
//! distribution 2.8) and a static HTTP file server (an https-style chart
//! repository without TLS). Both are started per test on a free port and stop
//! when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use xtask::cluster::local::registry::LocalRegistry;
use xtask::runner::Cmd;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status code of `GET path`, or `None` when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `docker-registry` process with its own storage (the library's
/// [`LocalRegistry`]); killed on drop.
pub struct Registry {
    pub port: u16,
    pub storage: PathBuf,
    _registry: LocalRegistry,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry`, optionally with htpasswd auth for one user.
    /// `None` (a SKIP notice) when the binary or htpasswd is missing.
    pub fn start(user: Option<(&str, &str)>) -> Option<Self> {
        super::tool("docker-registry")?;
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = match user {
            Some((u, p)) => {
                let bin = super::tool("htpasswd")?;
                let line = Cmd::new(bin).args(["-Bbn", u, p]).read().unwrap();
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, line.trim()).unwrap();
                Some(file)
            }
            None => None,
        };
        let registry = LocalRegistry::start(dir.path(), htpasswd.as_deref())
            .unwrap_or_else(|e| panic!("docker-registry did not start: {e}"));
        Some(Self {
            port: registry.port,
            storage: registry.storage.clone(),
            _registry: registry,
            _dir: dir,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:<port>/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("oci://{}/{repo}", self.host())
    }

    /// Every file the registry stored (to show that nothing was written).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.storage, &mut out);
        out.sort();
        out
    }
}

/// Serves the files of a folder over plain HTTP on loopback (GET and HEAD);
/// stops accepting when dropped.
pub struct FileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let root = root.clone();
                        std::thread::spawn(move || serve_one(stream, &root));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(stream: TcpStream, root: &Path) {
    stream.set_nonblocking(false).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/").split('?').next().unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let mut stream = stream;
    let ok = !path.contains("..") && file.is_file();
    if !ok {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let mut body = Vec::new();
    std::fs::File::open(&file)
        .and_then(|mut f| f.read_to_end(&mut body))
        .unwrap();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
}
