//! A long-lived process spoken to over pipes ([`crate::Cmd::session`]).

use std::io;
use std::time::Duration;

/// A long-lived process started by [`Cmd::session`]; killed when dropped.
pub struct Session {
    tool: String,
    child: std::process::Child,
    pub stdin: std::process::ChildStdin,
    pub stdout: io::BufReader<std::process::ChildStdout>,
}

impl Session {
    pub(crate) fn new(
        tool: String,
        child: std::process::Child,
        stdin: std::process::ChildStdin,
        stdout: std::process::ChildStdout,
    ) -> Self {
        Self {
            tool,
            child,
            stdin,
            stdout: io::BufReader::new(stdout),
        }
    }

    /// The tool's name, for messages.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// Kills the process if the returned guard is still alive after
    /// `timeout`; `None` never does. Drop the guard when the request is done.
    pub fn watchdog(&self, timeout: Option<Duration>) -> Watchdog {
        let Some(timeout) = timeout else {
            return Watchdog {
                done: None,
                fired: Default::default(),
            };
        };
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let pid = self.child.id();
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let firing = fired.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                // Said before the kill: whoever sees the process end sees this.
                firing.store(true, std::sync::atomic::Ordering::SeqCst);
                #[cfg(unix)]
                // SAFETY: a plain signal to our own child, which is not yet
                // reaped (the Session owns it until it is dropped).
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        });
        Watchdog {
            done: Some(done),
            fired,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// See [`Session::watchdog`]: dropping it stands the watchdog down.
pub struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    /// Set by the watchdog before it kills the process.
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    /// True when the request is done in time: the process was not killed.
    pub fn finish(mut self) -> bool {
        if let Some(done) = self.done.take() {
            // Stands the watchdog down if it has not fired yet.
            let _ = done.send(());
        }
        !self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Write};

    use super::*;
    use crate::{Bounds, Cmd};

    #[test]
    fn a_session_answers_many_requests_and_its_watchdog_stops_it() {
        let mut s = Cmd::new("cat").session(&Bounds::default()).unwrap();
        for word in ["one", "two"] {
            let dog = s.watchdog(Some(Duration::from_secs(30)));
            writeln!(s.stdin, "{word}").unwrap();
            let mut line = String::new();
            s.stdout.read_line(&mut line).unwrap();
            assert_eq!(line, format!("{word}\n"));
            assert!(dog.finish(), "answered in time");
        }
        let dog = s.watchdog(Some(Duration::ZERO));
        let mut line = String::new();
        // Killed before it answers: the pipe ends.
        assert_eq!(s.stdout.read_line(&mut line).unwrap(), 0);
        assert!(!dog.finish(), "stopped by the watchdog");
    }
}
