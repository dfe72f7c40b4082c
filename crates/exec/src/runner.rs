//! The one way this crate runs external programs: logs the command line at
//! `-v`, and turns a missing binary or a failure into an error that names the
//! tool and carries its stderr.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns command logging on or off for the whole process (`-v`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{tool} not found: install it with `cargo xtask tools install` or put it on PATH")]
    NotFound { tool: String },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("could not run {tool}: {source}")]
    Io { tool: String, source: io::Error },
    #[error("{tool} ran longer than {} s and was stopped (raise the bound with {raise})", after.as_secs_f64())]
    TimedOut {
        tool: String,
        after: Duration,
        raise: String,
    },
}

/// Bounds on one process: wall time, and address space where the platform
/// can set it (`RLIMIT_AS` on Unix). `raise` names how the user lifts them.
#[derive(Clone, Debug, Default)]
pub struct Bounds {
    pub timeout: Option<Duration>,
    pub memory_bytes: Option<u64>,
    pub raise: String,
}

/// Bounds the address space of the process `cmd` will start (`RLIMIT_AS`,
/// on Unix; elsewhere nothing).
fn limit_address_space(cmd: &mut std::process::Command, limit: u64) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches no memory of
        // the parent.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (cmd, limit);
}

/// A command line to run: `Cmd::new("kustomize").arg("build").arg(dir).read()`.
#[derive(Clone, Debug)]
pub struct Cmd {
    // An OsString, not a PathBuf: duct resolves a bare PathBuf name against the
    // working directory instead of PATH.
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The short tool name used in messages: the file name of the program.
    pub fn tool(&self) -> String {
        let program = Path::new(&self.program);
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    /// The command line as a user could paste it.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| {
                let s = a.to_string_lossy();
                if s.is_empty() || s.contains([' ', '"', '\'', '$']) {
                    format!("'{}'", s.replace('\'', r"'\''"))
                } else {
                    s.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(self.program_path(), &self.args);
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        if let Some(bytes) = &self.stdin {
            expr = expr.stdin_bytes(bytes.clone());
        }
        expr
    }

    /// The program as a path, found on the PATH it will run with. duct
    /// hands the child a whole environment, and with it std cannot spawn a
    /// bare name with `posix_spawn`: it forks (copying this process's page
    /// tables) and tries every PATH entry in the child. A name not found, or
    /// found in a relative PATH entry (which means the child's folder), is
    /// left for the spawn to resolve and report.
    fn program_path(&self) -> OsString {
        if Path::new(&self.program).components().count() != 1 {
            return self.program.clone();
        }
        let path = match self.env.iter().rev().find(|(k, _)| k == "PATH") {
            Some((_, v)) => Some(v.clone()),
            None => std::env::var_os("PATH"),
        };
        crate::tools::find_on(path.as_deref(), &self.program.to_string_lossy())
            .filter(|found| found.is_absolute())
            .map_or_else(|| self.program.clone(), PathBuf::into_os_string)
    }

    fn log(&self) {
        if verbose() {
            match &self.dir {
                Some(dir) => eprintln!("$ {}  (in {})", self.display(), dir.display()),
                None => eprintln!("$ {}", self.display()),
            }
        }
    }

    /// Runs to completion, capturing stdout and stderr, whatever the exit status.
    pub fn output(&self) -> Result<Output, RunError> {
        self.log();
        self.expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| self.spawn_error(source))
    }

    /// Like [`Cmd::output`], under `bounds`: past the timeout the process is
    /// killed and the run is [`RunError::TimedOut`]; the memory bound makes
    /// its allocations fail, which the tool reports as its own failure.
    pub fn output_bounded(&self, bounds: &Bounds) -> Result<Output, RunError> {
        self.log();
        let mut expr = self.expression();
        if let Some(limit) = bounds.memory_bytes {
            expr = expr.before_spawn(move |cmd| {
                limit_address_space(cmd, limit);
                Ok(())
            });
        }
        let handle = expr
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .map_err(|source| self.spawn_error(source))?;
        let Some(timeout) = bounds.timeout else {
            return handle
                .into_output()
                .map_err(|source| self.spawn_error(source));
        };
        let started = Instant::now();
        let mut pause = Duration::from_micros(500);
        loop {
            if handle
                .try_wait()
                .map_err(|source| self.spawn_error(source))?
                .is_some()
            {
                return handle
                    .into_output()
                    .map_err(|source| self.spawn_error(source));
            }
            if started.elapsed() >= timeout {
                let _ = handle.kill();
                return Err(RunError::TimedOut {
                    tool: self.tool(),
                    after: timeout,
                    raise: bounds.raise.clone(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Runs and returns stdout as bytes; a non-zero exit is an error with stderr.
    pub fn read_bytes(&self) -> Result<Vec<u8>, RunError> {
        let out = self.output()?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(self.failed(&out))
        }
    }

    /// Runs and returns stdout as text (lossy UTF-8).
    pub fn read(&self) -> Result<String, RunError> {
        self.read_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Runs with stdout and stderr passed through to the terminal.
    pub fn run(&self) -> Result<(), RunError> {
        self.log();
        let out = self
            .expression()
            .unchecked()
            .run()
            .map_err(|source| self.spawn_error(source))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RunError::Failed {
                tool: self.tool(),
                status: out.status.to_string(),
                stderr: "see its output above".into(),
            })
        }
    }

    /// Starts the command as a long-lived [`Session`]: its stdin and stdout
    /// are pipes for the caller, its stderr is discarded, and the memory
    /// bound of `bounds` holds for its whole life (time is bounded per
    /// request, with [`Session::watchdog`]).
    pub fn session(&self, bounds: &Bounds) -> Result<crate::Session, RunError> {
        self.log();
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(limit) = bounds.memory_bytes {
            limit_address_space(&mut cmd, limit);
        }
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(source))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(RunError::Io {
                tool: self.tool(),
                source: io::Error::other("no pipes to the process"),
            });
        };
        Ok(crate::Session::new(self.tool(), child, stdin, stdout))
    }

    fn spawn_error(&self, source: io::Error) -> RunError {
        if source.kind() == io::ErrorKind::NotFound {
            RunError::NotFound { tool: self.tool() }
        } else {
            RunError::Io {
                tool: self.tool(),
                source,
            }
        }
    }

    fn failed(&self, out: &Output) -> RunError {
        RunError::Failed {
            tool: self.tool(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_tool_and_the_fix() {
        let err = Cmd::new("no-such-tool-xyz").read().unwrap_err();
        assert_eq!(
            err.to_string(),
            "no-such-tool-xyz not found: install it with `cargo xtask tools install` or put it on PATH"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_bare_name_is_found_on_the_path_given_to_the_command() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("xtask-runner-probe");
        std::fs::write(&tool, "#!/bin/sh\necho \"from $0\"\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(
            std::iter::once(dir.path().to_path_buf())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        let cmd = Cmd::new("xtask-runner-probe").env("PATH", &path);
        assert_eq!(cmd.program_path(), tool.as_os_str());
        assert_eq!(
            cmd.read().unwrap().trim(),
            format!("from {}", tool.display())
        );
        // Messages keep the name as it was given.
        assert_eq!(cmd.tool(), "xtask-runner-probe");
        assert_eq!(cmd.display(), "xtask-runner-probe");
        // Not on the given PATH: left to the spawn, which names the tool.
        let err = Cmd::new("xtask-runner-probe").read().unwrap_err();
        assert!(
            matches!(err, RunError::NotFound { ref tool } if tool == "xtask-runner-probe"),
            "{err}"
        );
    }

    #[test]
    fn failure_carries_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .read()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("sh failed (exit status: 3)"), "{msg}");
        assert!(msg.ends_with("boom"), "{msg}");
    }

    #[test]
    fn stdin_and_stdout_round_trip() {
        let out = Cmd::new("cat").stdin_bytes("hello").read().unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn a_process_past_its_time_bound_is_stopped() {
        let bounds = Bounds {
            timeout: Some(Duration::from_millis(200)),
            memory_bytes: None,
            raise: "X_TIMEOUT".into(),
        };
        let started = Instant::now();
        let err = Cmd::new("sleep")
            .arg("30")
            .output_bounded(&bounds)
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "sleep ran longer than 0.2 s and was stopped (raise the bound with X_TIMEOUT)"
        );
        let out = Cmd::new("echo").arg("hi").output_bounded(&bounds).unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }

    #[cfg(unix)]
    #[test]
    fn the_memory_bound_makes_big_allocations_fail() {
        let bounds = Bounds {
            timeout: None,
            memory_bytes: Some(64 << 20),
            raise: String::new(),
        };
        // 200 MB of zeros held in one shell variable cannot fit in 64 MiB.
        let out = Cmd::new("sh")
            .args([
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}",
            ])
            .output_bounded(&bounds)
            .unwrap();
        assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "200000000");
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let cmd = Cmd::new("echo").args(["a b", "c"]);
        assert_eq!(cmd.display(), "echo 'a b' c");
    }
}
