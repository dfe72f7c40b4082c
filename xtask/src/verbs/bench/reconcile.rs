//! `bench reconcile`: edit a ConfigMap, publish, reconcile: edit→applied and
//! edit→Ready with the real Flux controllers on the Docker-less control
//! plane. No peer tool does this, so the report has our side only.

use std::path::Path;
use std::time::Instant;

use super::{Report, Row, Samples};
use crate::cluster::local::{E2eOptions, E2eReport, Scenario};

pub(super) fn run(root: &Path, cycles: usize) -> anyhow::Result<Report> {
    let started = Instant::now();
    let say = &mut |line: &str| eprintln!("{line}");
    let mut scenario = Scenario::setup(&E2eOptions::new(root.to_path_buf()), say)?;
    scenario.first_reconcile(say, &mut E2eReport::default())?;
    let setup = started.elapsed();
    let (mut applied, mut ready) = (Vec::new(), Vec::new());
    for i in 0..cycles {
        let (a, r) = scenario.edit_cycle(&format!("bench-{i}"))?;
        eprintln!(
            "cycle {}: applied {:.2} s, all Ready {:.2} s",
            i + 1,
            a.as_secs_f64(),
            r.as_secs_f64()
        );
        applied.push(a);
        ready.push(r);
    }
    Ok(Report {
        title: format!(
            "bench reconcile: {cycles} edit cycles on the Docker-less control plane (setup and first reconcile {:.1} s)",
            setup.as_secs_f64()
        ),
        rows: vec![
            Row::alone("edit→applied", Samples::new(applied)),
            Row::alone("edit→Ready", Samples::new(ready)),
        ],
    })
}
