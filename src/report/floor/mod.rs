//! Where a run's time went (pure): a floor computed from the run's own
//! measurements — every server start-up, every client start-up up to its
//! first line, and each client process's longest test (waits overlap in
//! lanes, but not below the longest) — spread over the job slots, against
//! the wall time of the cells; and the busiest client processes.
use crate::model::cell::CellKey;
use crate::model::run::RunSummary;
use crate::model::tls::KeyType;
use serde::Serialize;
use std::collections::BTreeMap;

/// How close a run came to its floor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// Client processes that always ran at once.
    pub jobs: usize,
    /// Client processes at once at most (more than `jobs` while cores were idle).
    pub at_once: usize,
    /// The most that did run at once (0: not known).
    pub most_at_once: usize,
    /// CPU time of the runner and its processes (0: not known).
    pub cpu_ms: f64,
    /// The machine's cores (the jobs when not known).
    pub machine_cores: usize,
    /// That CPU time ÷ the machine's cores.
    pub cpu_floor_ms: f64,
    /// (server start-ups + client start-ups) ÷ cores used + (longest test per
    /// client process) ÷ processes at once at most.
    pub wait_floor_ms: f64,
    /// The cores the start-ups spread over: the jobs, or the machine's cores if fewer.
    pub cores: usize,
    /// Wall time of the cells (builds excluded), retries included.
    pub wall_ms: f64,
    /// The larger of the two floors.
    pub floor_ms: f64,
    /// wall ÷ floor.
    pub ratio: f64,
    pub servers_started: usize,
    pub server_startup_ms: f64,
    pub clients_started: usize,
    pub client_startup_ms: f64,
    pub longest_tests_ms: f64,
    /// The start-ups as the wait floor counts them: their sum, or the run's
    /// CPU when that is less (start-ups side by side stretch each other).
    pub startups_counted_ms: f64,
    /// The five longest client processes, longest first.
    pub busiest: Vec<Busy>,
    /// When the cores sat idle (`None`: the run has no load samples).
    pub idle: Option<Idle>,
}

/// Idle core-seconds of a run, from its load samples, and what kept more
/// client processes from starting while they were idle.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Idle {
    /// Idle cores summed over the run (core-ms).
    pub core_ms: f64,
    /// Of those, while less than `SPARE_MEMORY` of the memory was
    /// available (no process starts beyond the jobs then).
    pub short_of_memory_ms: f64,
    /// Of those, while the most processes allowed were running.
    pub at_most_ms: f64,
    /// Of those, in seconds with less than `SPARE_CORES` idle: too little
    /// for a process to start beyond the jobs.
    pub below_spare_cores_ms: f64,
    /// Client processes running, on average.
    pub mean_running: f64,
}

/// The idle time of a run's load samples; `None` without any. Each sample
/// stands for the time since the one before it (the first: since 0).
pub fn idle(s: &RunSummary) -> Option<Idle> {
    if s.load.is_empty() {
        return None;
    }
    let spare = crate::plan::admit::SPARE_MEMORY;
    let mut out = Idle::default();
    let (mut before, mut running_ms) = (0.0, 0.0);
    for l in &s.load {
        let dt = (l.at_ms - before).max(0.0);
        before = l.at_ms;
        let idle = l.idle_cores * dt;
        out.core_ms += idle;
        if l.memory_free.is_some_and(|m| m < spare) {
            out.short_of_memory_ms += idle;
        }
        if s.at_most > 0 && l.running >= s.at_most {
            out.at_most_ms += idle;
        }
        if l.idle_cores < crate::plan::admit::SPARE_CORES {
            out.below_spare_cores_ms += idle;
        }
        running_ms += l.running as f64 * dt;
    }
    out.mean_running = running_ms / before.max(1.0);
    Some(out)
}

/// One of the busiest client processes.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Busy {
    /// The cell, or `client=C/server=S` for the cells of a pair.
    pub process: String,
    pub duration_ms: f64,
    pub server_ready_ms: Option<f64>,
    pub client_first_line_ms: f64,
    /// Its longest test (set/case) and that test's time.
    pub longest_test: String,
    pub longest_ms: f64,
}

/// The client process that ran a cell's tests.
fn process(s: &RunSummary, k: &CellKey) -> String {
    match (s.per_pair, k.key_type == KeyType::default()) {
        (false, _) => k.id(),
        (true, true) => format!("client={}/server={}", k.client, k.server),
        (true, false) => format!("client={}/server={}/key={}", k.client, k.server, k.key_type.as_str()),
    }
}

/// The floor of a run; `None` when nothing ran or the run does not say how
/// many jobs it had.
pub fn floor(s: &RunSummary) -> Option<Floor> {
    if s.jobs == 0 || s.cells.is_empty() || s.execute_ms <= 0.0 {
        return None;
    }
    let mut longest: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for t in &s.tests {
        let e = longest.entry(process(s, &t.cell)).or_insert((0.0, String::new()));
        if t.duration_ms > e.0 {
            *e = (t.duration_ms, format!("{}/{}", t.set, t.case));
        }
    }
    let servers: Vec<f64> = s.cells.iter().filter_map(|c| c.server_ready_ms).collect();
    let clients: Vec<f64> = s
        .cells
        .iter()
        .flat_map(|c| c.client_first_line_ms.iter().copied())
        .collect();
    let longest_tests_ms: f64 = longest.values().map(|(ms, _)| ms).sum();
    let startups = servers.iter().sum::<f64>() + clients.iter().sum::<f64>();
    // Start-ups timed while others ran beside them (every server of a run
    // starts at once) are stretched by each other: together they cannot have
    // worked the cores longer than the whole run's CPU, when it was measured.
    let startups = if s.cpu_ms > 0.0 {
        startups.min(s.cpu_ms)
    } else {
        startups
    };
    let cores = match s.cores {
        0 => s.jobs,
        c => c.min(s.jobs),
    };
    // Start-ups work a core; the longest tests mostly wait, side by side in
    // as many processes as may run at once. And no run is faster than its
    // CPU time spread over every core of the machine.
    let at_once = s.at_most.max(s.jobs);
    let wait_floor_ms = startups / cores as f64 + longest_tests_ms / at_once as f64;
    let machine_cores = if s.cores == 0 { s.jobs } else { s.cores };
    let cpu_floor_ms = s.cpu_ms / machine_cores as f64;
    let floor_ms = wait_floor_ms.max(cpu_floor_ms).max(1.0);
    let mut by_process: BTreeMap<String, Busy> = BTreeMap::new();
    for c in &s.cells {
        let p = process(s, &c.key);
        let b = by_process.entry(p.clone()).or_insert_with(|| {
            let (ms, test) = longest.get(&p).cloned().unwrap_or_default();
            Busy {
                process: p,
                longest_test: test,
                longest_ms: ms,
                ..Default::default()
            }
        });
        b.duration_ms = b.duration_ms.max(c.duration_ms);
        if let Some(r) = c.server_ready_ms {
            *b.server_ready_ms.get_or_insert(0.0) += r;
        }
        b.client_first_line_ms += c.client_first_line_ms.iter().sum::<f64>();
    }
    let mut busiest: Vec<Busy> = by_process.into_values().collect();
    busiest.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    busiest.truncate(5);
    Some(Floor {
        jobs: s.jobs,
        at_once,
        most_at_once: s.most_at_once,
        cpu_ms: s.cpu_ms,
        machine_cores,
        cpu_floor_ms,
        wait_floor_ms,
        cores,
        wall_ms: s.execute_ms,
        floor_ms,
        ratio: s.execute_ms / floor_ms,
        servers_started: servers.len(),
        server_startup_ms: servers.iter().sum(),
        clients_started: clients.len(),
        client_startup_ms: clients.iter().sum(),
        longest_tests_ms,
        startups_counted_ms: startups,
        busiest,
        idle: idle(s),
    })
}

/// How many client processes ran at once, in words.
fn processes(f: &Floor) -> String {
    match (f.at_once > f.jobs, f.most_at_once) {
        (false, _) => format!("{} client processes at a time", f.jobs),
        (true, 0) => format!(
            "{} client processes at a time, up to {} while cores were idle",
            f.jobs, f.at_once
        ),
        (true, n) => format!(
            "{} client processes at a time, up to {} while cores were idle ({n} at the most)",
            f.jobs, f.at_once
        ),
    }
}

/// The Markdown section: wall, floor, ratio, what the floor is made of, and
/// the busiest client processes.
pub fn render(f: &Floor) -> String {
    let s = |ms: f64| format!("{:.1} s", ms / 1000.0);
    let mut out = format!(
        "## Where the time went

Cells took **{}** of wall time with {} on {} cores; their floor is **{}**, so wall ÷ floor = **{:.2}**. \
         The floor is the larger of two:\n\
         - the CPU the run used, {} (the runner and every process it started) ÷ {} cores = {};\n\
         - ({} server start-ups, {} + {} client start-ups, {}{}) ÷ {} cores used + \
         (each client process's longest test, {}) ÷ {} at a time = {}.\n\n",
        s(f.wall_ms),
        processes(f),
        f.machine_cores,
        s(f.floor_ms),
        f.ratio,
        if f.cpu_ms > 0.0 {
            s(f.cpu_ms)
        } else {
            "not measured".into()
        },
        f.machine_cores,
        s(f.cpu_floor_ms),
        f.servers_started,
        s(f.server_startup_ms),
        f.clients_started,
        s(f.client_startup_ms),
        if f.startups_counted_ms < f.server_startup_ms + f.client_startup_ms {
            format!(
                "; counted as the run's CPU, {}, since they stretched each other",
                s(f.startups_counted_ms)
            )
        } else {
            String::new()
        },
        f.cores,
        s(f.longest_tests_ms),
        f.at_once,
        s(f.wait_floor_ms),
    );
    if let Some(i) = &f.idle {
        out.push_str(&format!(
            "Cores sat idle for {} (core-seconds; {:.0}% of wall × cores), {:.1} client processes running on average; \
             {} of it while less than {:.0}% of the memory was available (no process starts beyond the jobs then), \
             {} with {} processes running, {} in seconds with less than {:.2} of a core idle (too little to start one).\n\n",
            s(i.core_ms),
            100.0 * i.core_ms / (f.wall_ms * f.machine_cores as f64).max(1.0),
            i.mean_running,
            s(i.short_of_memory_ms),
            100.0 * crate::plan::admit::SPARE_MEMORY,
            s(i.at_most_ms),
            f.at_once,
            s(i.below_spare_cores_ms),
            crate::plan::admit::SPARE_CORES,
        ));
    }
    out.push_str(
        "| busiest client process | took | server starts | client start | longest test |\n|---|---|---|---|---|\n",
    );
    for b in &f.busiest {
        let ready = b.server_ready_ms.map(s).unwrap_or_else(|| "shared".into());
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} ({}) |\n",
            b.process,
            s(b.duration_ms),
            ready,
            s(b.client_first_line_ms),
            b.longest_test,
            s(b.longest_ms)
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
