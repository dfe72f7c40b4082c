//! Long-running child processes for the local control plane. [`exec::runner::Cmd`]
//! runs a command to completion; these run in the background.
//!
//! Each child starts in its own process group, with its stdout and stderr
//! appended to a log file. A [`Supervised`] kills its whole group when
//! dropped (SIGTERM, then SIGKILL after a grace period), and every live group
//! is also killed by a SIGINT/SIGTERM handler ([`install_signal_handler`]) and,
//! on Linux, when this process dies (`PR_SET_PDEATHSIG`). So: no orphans on
//! exit, on Ctrl-C, or on a panicking test.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Process groups alive right now; 0 marks a free slot. A fixed array of
/// atomics so that the signal handler can read it safely.
static GROUPS: [AtomicI32; 32] = [const { AtomicI32::new(0) }; 32];

fn register(pgid: i32) {
    for slot in &GROUPS {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn unregister(pgid: i32) {
    for slot in &GROUPS {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    for slot in &GROUPS {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
    // SAFETY: _exit(2) is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs (once) a SIGINT/SIGTERM/SIGHUP handler that kills every
/// supervised process group, then exits 128+signal.
pub fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installing a handler that only calls async-signal-safe functions.
            unsafe {
                libc::signal(sig, handler);
            }
        }
    });
}

/// Why a readiness probe did not pass (yet): whatever the probe ran into.
pub type ProbeError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited early ({status}); last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} did not become ready within {waited:?}: {why}; last lines of {log}:\n{tail}")]
    NotReady {
        name: String,
        waited: Duration,
        #[source]
        why: ProbeError,
        log: PathBuf,
        tail: String,
    },
}

/// A background process in its own process group, killed with its group on drop.
#[derive(Debug)]
pub struct Supervised {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    pgid: i32,
}

impl Supervised {
    /// Starts `program args...` with `env` added, logging to `log` (truncated).
    pub fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: &[(&str, &OsStr)],
        log: &Path,
    ) -> Result<Self, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        install_signal_handler();
        let out = File::create(log).map_err(|source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if exec::runner::verbose() {
            eprintln!("$ {} ... > {}", program.display(), log.display());
        }
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_string(),
            program: program.to_path_buf(),
            source,
        })?;
        let pgid = child.id() as i32;
        register(pgid);
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            pgid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), ProcessError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ProcessError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log, 20),
            }),
            _ => Ok(()),
        }
    }

    /// Polls `probe` every 200 ms until it returns `Ok`, the process exits, or
    /// `timeout` passes.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<(), ProbeError>,
    ) -> Result<Duration, ProcessError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let why = match probe() {
                Ok(()) => return Ok(started.elapsed()),
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                return Err(ProcessError::NotReady {
                    name: self.name.clone(),
                    waited: started.elapsed(),
                    why,
                    log: self.log.clone(),
                    tail: tail(&self.log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if self.pgid <= 0 {
            return;
        }
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(-self.pgid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (the leader or its children).
        // SAFETY: as above.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        unregister(self.pgid);
        self.pgid = 0;
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let mut p =
            Supervised::spawn("sleeper", Path::new("/bin/sh"), ["-c", &script], &[], &log).unwrap();
        p.wait_until(Duration::from_secs(5), || {
            if pidfile.is_file() && !std::fs::read_to_string(&pidfile).unwrap().is_empty() {
                Ok(())
            } else {
                Err("no pid yet".into())
            }
        })
        .unwrap();
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(p);
        // Gone, or a zombie waiting for init to reap it: either way not running.
        let running = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .is_some_and(|zombie| !zombie)
        };
        let started = Instant::now();
        while running() && started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !running(),
            "the grandchild {grandchild} outlived the drop guard"
        );
    }

    #[test]
    fn early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fail.log");
        let mut p = Supervised::spawn(
            "failer",
            Path::new("/bin/sh"),
            ["-c", "echo boom; exit 3"],
            &[],
            &log,
        )
        .unwrap();
        let err = p
            .wait_until(Duration::from_secs(5), || Err("never".into()))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("failer exited early"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }
}
