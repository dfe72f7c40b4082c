//! Numbered step lines with a spinner and a duration (indicatif on a
//! terminal; plain lines otherwise, e.g. in CI or under test).

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Runs steps one after another and reports each.
pub struct Steps {
    total: usize,
    done: usize,
    tty: bool,
    started: Instant,
    /// (title, duration, outcome) of every finished step.
    pub finished: Vec<(String, Duration, String)>,
}

/// Handed to a running step for sub-progress.
pub struct Progress {
    pb: Option<ProgressBar>,
    prefix: String,
}

impl Progress {
    /// Shows what the step is doing now (spinner message, or an indented line).
    pub fn note(&self, msg: &str) {
        match &self.pb {
            Some(pb) => pb.set_message(msg.to_string()),
            None => eprintln!("      {} {msg}", self.prefix),
        }
    }

    /// Updates the spinner only; nothing in plain mode (for frequent polls).
    pub fn tick(&self, msg: &str) {
        if let Some(pb) = &self.pb {
            pb.set_message(msg.to_string());
        }
    }
}

/// A step's error: names the step, keeps the cause.
#[derive(Debug, thiserror::Error)]
#[error("step {number}/{total} ({title}) failed: {source:#}")]
pub struct StepFailed {
    pub number: usize,
    pub total: usize,
    pub title: String,
    pub source: anyhow::Error,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            finished: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs one step. `f` returns its value and a short outcome ("created",
    /// "reused", ...) for the step line.
    pub fn run<T>(
        &mut self,
        title: &str,
        f: impl FnOnce(&Progress) -> anyhow::Result<(T, String)>,
    ) -> Result<T, StepFailed> {
        self.done += 1;
        let number = self.done;
        let label = format!("[{number}/{}] {title}", self.total);
        let pb = self.tty.then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                    .expect("a valid template"),
            );
            pb.set_prefix(label.clone());
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        if pb.is_none() {
            eprintln!("  ... {label}");
        }
        let progress = Progress {
            pb,
            prefix: format!("[{number}/{}]", self.total),
        };
        let started = Instant::now();
        let result = f(&progress);
        let took = started.elapsed();
        let line = |mark: &str, outcome: &str| {
            format!("{mark} {label}: {outcome} ({})", fmt_duration(took))
        };
        let (text, ret) = match result {
            Ok((value, outcome)) => {
                self.finished
                    .push((title.to_string(), took, outcome.clone()));
                (line("ok ", &outcome), Ok(value))
            }
            Err(source) => (
                line("ERR", "failed"),
                Err(StepFailed {
                    number,
                    total: self.total,
                    title: title.to_string(),
                    source,
                }),
            ),
        };
        match progress.pb {
            Some(pb) => {
                pb.finish_and_clear();
                eprintln!("{text}");
            }
            None => eprintln!("{text}"),
        }
        ret
    }
}

/// One deadline for every wait after the cluster exists, and what each
/// wait took of it, so a timeout can say where the time went.
pub struct Budget {
    pub total: Duration,
    started: Instant,
    spent: RefCell<Vec<(String, Duration)>>,
}

impl Budget {
    pub fn start(total: Duration) -> Self {
        Self {
            total,
            started: Instant::now(),
            spent: RefCell::new(Vec::new()),
        }
    }

    /// What is left (at least a second, so a wait still looks once).
    pub fn remaining(&self) -> Duration {
        self.total
            .saturating_sub(self.started.elapsed())
            .max(Duration::from_secs(1))
    }

    pub fn record(&self, what: &str, took: Duration) {
        self.spent.borrow_mut().push((what.to_string(), took));
    }

    /// Times `f` and records it under `what`, failed or not.
    pub fn time<T, E>(&self, what: &str, f: impl FnOnce(Duration) -> Result<T, E>) -> Result<T, E> {
        let started = Instant::now();
        let r = f(self.remaining());
        self.record(what, started.elapsed());
        r
    }

    /// `12m03s of 20m: Kustomization flux-system/apps 6m10s, cilium 4m02s, ...`
    /// (the five longest waits).
    pub fn report(&self) -> String {
        let mut spent = self.spent.borrow().clone();
        spent.sort_by_key(|s| std::cmp::Reverse(s.1));
        let top: Vec<String> = spent
            .iter()
            .take(5)
            .map(|(w, d)| format!("{w} {}", fmt_duration(*d)))
            .collect();
        format!(
            "{} of {} used{}{}",
            fmt_duration(self.started.elapsed()),
            fmt_duration(self.total),
            if top.is_empty() { "" } else { "; longest: " },
            top.join(", ")
        )
    }
}

/// `850ms`, `12.3s`, `2m05s`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// Prints a preflight's problems one a line and returns the step's error.
pub fn listed(problems: &[String]) -> anyhow::Error {
    for line in problems {
        eprintln!("  - {line}");
    }
    anyhow::anyhow!("{} problem(s), listed above", problems.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(fmt_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn the_budget_names_where_the_time_went() {
        let b = Budget::start(Duration::from_secs(1200));
        assert!(b.remaining() > Duration::from_secs(1190));
        b.record("cilium", Duration::from_secs(130));
        b.record("Kustomization flux-system/apps", Duration::from_secs(370));
        let r: Result<(), &str> = b.time("nodes", |left| {
            assert!(left <= Duration::from_secs(1200));
            Err("timed out")
        });
        assert!(r.is_err());
        let report = b.report();
        assert!(
            report.contains("of 20m00s used; longest: Kustomization flux-system/apps 6m10s, cilium 2m10s, nodes "),
            "{report}"
        );
        assert_eq!(
            Budget::start(Duration::ZERO).remaining(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_failing_step_is_named() {
        let mut s = Steps::new(3);
        s.run("One", |_| Ok(((), "ok".into()))).unwrap();
        let err = s
            .run::<()>("Two", |_| Err(anyhow::anyhow!("boom")))
            .unwrap_err();
        assert_eq!(err.to_string(), "step 2/3 (Two) failed: boom");
    }
}
