//! Whether a run starts another client process now (pure). Up to `jobs`
//! run at once, as always. Most of a client process's time is spent
//! waiting (server delays, deadlines, cancellations, keepalive, black
//! holes), and a process that waits should not hold a CPU slot: beyond
//! `jobs`, up to `at_most` run at once, and another one starts only while
//! the machine has a third of a core idle, and not before the previous extra
//! one has had half a second to show its own start-up in that measure, and
//! only while a quarter of the memory is free (servers and clients of JVM
//! stacks take 0.2 to 0.8 GiB each; the shared servers' pool stops idle
//! servers below `LOW_MEMORY`).

/// Idle cores, over the last second, needed to start a process beyond `jobs`.
/// Full runs (`--profile full --key-type ec-p256`, the same measured order,
/// 2 cores), with `SETTLE_MS`: 0.75 and 1.5 s, 429 s (205 core-seconds idle,
/// 123 of them in seconds with less than 0.75 idle); 0.5 and 0.75 s, 386 s;
/// 0.35 and 0.5 s, 367 s (79 idle), the same verdicts and CPU in each.
pub const SPARE_CORES: f64 = 0.35;
/// Share of the memory that must be free to start a process beyond `jobs`.
pub const SPARE_MEMORY: f64 = 0.25;
/// Below this share of free memory, a server about to start first stops the
/// shared servers no cell is using (they start again when a cell needs them).
pub const LOW_MEMORY: f64 = 0.15;
/// `LOW_MEMORY`, or the share `STOCK_MATRIX_LOW_MEMORY` gives (0 to 1: 0
/// never stops a server early, 1 always does).
pub fn low_memory() -> f64 {
    std::env::var("STOCK_MATRIX_LOW_MEMORY")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| (0.0..=1.0).contains(v))
        .unwrap_or(LOW_MEMORY)
}

/// How long after starting a process beyond `jobs` the next one waits (a
/// JVM or Node client's start-up is a second or two of a full core: half of
/// it shows in the last second's idle cores by then).
pub const SETTLE_MS: u64 = 500;
/// Processes at once at most, per job, unless told. With 4 (until stop 29)
/// a full run on 2 cores had its 8 processes running nearly all the time
/// while the cores were idle a third of it (wall ÷ floor 1.56): they were
/// waiting. With 8, the same 20 pairs took 132 s instead of 233 s. With 12
/// (stop 41), the full run (`--key-type ec-p256`) took 464 s instead of
/// 516 s, with 24 processes at once at most (runner 0.35 GiB resident).
/// With 24 (stop 55, once a shared server no longer kept 12 MiB per
/// large-client-stream test), the full run's cores sat idle 38 core-seconds
/// with 24 running, and it took 352 s instead of 367 s in a fresh order, 36
/// at once at most.
pub const DEFAULT_PER_JOB: usize = 24;

/// How many client processes a run may have at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// CPU-heavy work at once: this many always start.
    pub jobs: usize,
    /// Processes at once at most, when the machine has cores to spare.
    pub at_most: usize,
}

impl Slots {
    /// `at_most` 0 means 24 times the jobs (`DEFAULT_PER_JOB`); it is
    /// never below the jobs.
    pub fn new(jobs: usize, at_most: usize) -> Slots {
        let jobs = jobs.max(1);
        let at_most = if at_most == 0 { DEFAULT_PER_JOB * jobs } else { at_most };
        Slots {
            jobs,
            at_most: at_most.max(jobs),
        }
    }
}

/// What the run sees when it considers starting the next process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    /// Client processes running.
    pub running: usize,
    /// Idle cores over about the last second (`None`: not known).
    pub idle_cores: Option<f64>,
    /// Time since the last process started beyond the jobs, if any did.
    pub since_extra_ms: Option<u64>,
    /// The share of the memory still available (`None`: not known).
    pub memory_free: Option<f64>,
}

/// Whether the next client process starts now.
pub fn admit(slots: Slots, now: Now) -> bool {
    if now.running < slots.jobs {
        return true;
    }
    if now.running >= slots.at_most || now.since_extra_ms.is_some_and(|ms| ms < SETTLE_MS) {
        return false;
    }
    now.idle_cores.is_some_and(|idle| idle >= SPARE_CORES) && now.memory_free.is_none_or(|m| m >= SPARE_MEMORY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(running: usize, idle: Option<f64>, since: Option<u64>) -> Now {
        Now {
            running,
            idle_cores: idle,
            since_extra_ms: since,
            memory_free: Some(0.5),
        }
    }

    #[test]
    fn the_jobs_always_start_and_the_extra_ones_only_on_idle_cores() {
        let s = Slots::new(2, 0);
        assert_eq!(s, Slots { jobs: 2, at_most: 48 });
        assert!(
            admit(s, now(1, Some(0.0), Some(0))),
            "below the jobs: even on a busy machine"
        );
        assert!(admit(s, now(2, Some(1.2), None)));
        assert!(!admit(s, now(2, Some(0.3), None)), "no core to spare");
        assert!(!admit(s, now(2, None, None)), "load not known: the jobs only");
        assert!(
            !admit(s, now(3, Some(1.9), Some(400))),
            "the last extra one is still starting"
        );
        assert!(admit(s, now(3, Some(1.9), Some(SETTLE_MS))));
        assert!(!admit(s, now(48, Some(2.0), None)), "at most");
        assert!(admit(s, now(47, Some(2.0), None)), "one below at most");
    }

    #[test]
    fn at_most_is_never_below_the_jobs() {
        assert_eq!(Slots::new(3, 2), Slots { jobs: 3, at_most: 3 });
        assert_eq!(Slots::new(0, 0), Slots { jobs: 1, at_most: 24 });
        assert!(
            !admit(Slots::new(2, 2), now(2, Some(2.0), None)),
            "--at-most equal to --jobs: as before"
        );
    }

    #[test]
    fn extra_processes_need_a_quarter_of_the_memory_free_and_the_jobs_do_not() {
        let s = Slots::new(2, 0);
        let with = |running, memory_free| Now {
            memory_free,
            ..now(running, Some(2.0), None)
        };
        assert!(admit(s, with(2, Some(0.3))));
        assert!(!admit(s, with(2, Some(0.2))), "short of memory: no extra process");
        assert!(admit(s, with(2, None)), "memory not known: cores decide");
        assert!(admit(s, with(1, Some(0.01))), "the jobs always start");
    }
}
