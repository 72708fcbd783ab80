//! How busy the machine is: idle cores from `/proc/stat`, over a sliding
//! window of about a second (Linux; elsewhere not known), the memory still
//! available (`/proc/meminfo`, or the cgroup's limit when tighter), and the
//! CPU time the runner and the processes it started and reaped have used.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window idle cores are measured over.
const WINDOW: Duration = Duration::from_millis(1000);

/// Jiffies the CPUs spent busy and in all, and how many CPUs there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    pub busy: u64,
    pub total: u64,
    pub cpus: usize,
}

/// The first (`cpu `) line of `/proc/stat` and the count of `cpuN` lines.
pub fn parse_stat(text: &str) -> Option<Ticks> {
    let mut lines = text.lines();
    let first = lines.next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = first.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    if f.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is in user already)
    let total: u64 = f.iter().take(8).sum();
    let idle = f[3] + f[4];
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(Ticks {
        busy: total - idle,
        total,
        cpus: cpus.max(1),
    })
}

/// Samples of `/proc/stat`, newest last.
#[derive(Default)]
pub struct CpuMeter {
    samples: VecDeque<(Instant, Ticks)>,
}

impl CpuMeter {
    /// Idle cores since the oldest sample of the window (`None` until one
    /// is at least a quarter of the window old, or without `/proc/stat`).
    pub fn idle_cores(&mut self) -> Option<f64> {
        let now = Instant::now();
        let t = parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        self.samples.push_back((now, t));
        while self.samples.len() > 2 && now - self.samples[1].0 >= WINDOW {
            self.samples.pop_front();
        }
        let (at, old) = *self.samples.front()?;
        if now - at < WINDOW / 4 || t.total <= old.total {
            return None;
        }
        let busy = (t.busy - old.busy) as f64 / (t.total - old.total) as f64;
        Some((1.0 - busy) * t.cpus as f64)
    }
}

/// Memory the processes may still take, and all there is, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub available: u64,
    pub total: u64,
}

impl Memory {
    /// The share of it still available (0 to 1).
    pub fn free_share(&self) -> f64 {
        self.available as f64 / self.total.max(1) as f64
    }
}

/// `MemAvailable` and `MemTotal` of `/proc/meminfo` (in kB there).
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    Some(Memory {
        available: field("MemAvailable:")?,
        total: field("MemTotal:")?,
    })
}

/// A cgroup (v2) limit: `memory.max` (a number, or `max` for none) and
/// `memory.current`, in bytes.
pub fn parse_cgroup(max: &str, current: &str) -> Option<Memory> {
    let total: u64 = max.trim().parse().ok()?;
    let used: u64 = current.trim().parse().ok()?;
    Some(Memory {
        available: total.saturating_sub(used),
        total,
    })
}

/// The memory still available to this process's children: the machine's,
/// or its cgroup's when that limit is tighter (`None`: not known).
pub fn memory() -> Option<Memory> {
    let machine = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    let group = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| {
        let path = c.lines().find_map(|l| l.strip_prefix("0::"))?.trim().to_string();
        let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        parse_cgroup(
            &std::fs::read_to_string(dir.join("memory.max")).ok()?,
            &std::fs::read_to_string(dir.join("memory.current")).ok()?,
        )
    });
    Some(match group {
        Some(g) if g.available < machine.available => g,
        _ => machine,
    })
}

/// CPU time (user + system) of this process and of its reaped children.
pub fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let of = |who| {
        getrusage(who).map_or(Duration::ZERO, |u| {
            let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
            tv(u.user_time()) + tv(u.system_time())
        })
    };
    of(UsageWho::RUSAGE_SELF) + of(UsageWho::RUSAGE_CHILDREN)
}

/// utime + stime + cutime + cstime of a /proc/PID/stat line, in ms.
pub fn cpu_ms_of_stat(stat: &str) -> Option<f64> {
    // The fields after the command name (which may hold spaces and parentheses).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks as f64 * 1000.0 / per_s as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_meminfo_and_a_cgroup_limit() {
        let text = "MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:    6000000 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(
            m,
            Memory {
                available: 6_000_000 * 1024,
                total: 24_000_000 * 1024
            }
        );
        assert_eq!(m.free_share(), 0.25);
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None, "no MemAvailable");
        assert_eq!(parse_cgroup("max\n", "5\n"), None, "no limit");
        assert_eq!(
            parse_cgroup("1000\n", "1200\n"),
            Some(Memory {
                available: 0,
                total: 1000
            })
        );
        let here = memory().expect("this machine's memory");
        assert!(here.available <= here.total && here.total > 0, "{here:?}");
    }

    #[test]
    fn proc_stat_gives_busy_and_total_ticks_and_the_cpus() {
        let text =
            "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\ncpu1 50 3 25 400 10 2 1 0 0 0\nintr 1 2\n";
        let t = parse_stat(text).unwrap();
        assert_eq!(
            t,
            Ticks {
                busy: 160,
                total: 980,
                cpus: 2
            }
        );
        assert_eq!(parse_stat("intr 1 2\n"), None);
        assert_eq!(parse_stat("cpu  1 2\n"), None, "too few fields");
    }

    #[test]
    fn the_meter_reads_this_machine() {
        let mut m = CpuMeter::default();
        assert_eq!(m.idle_cores(), None, "one sample is no window");
        if std::path::Path::new("/proc/stat").exists() {
            std::thread::sleep(WINDOW / 2);
            let idle = m.idle_cores().expect("a window of half a second");
            let cpus = parse_stat(&std::fs::read_to_string("/proc/stat").unwrap())
                .unwrap()
                .cpus;
            assert!((0.0..=cpus as f64).contains(&idle), "{idle} of {cpus}");
        }
        assert!(cpu_time() > Duration::ZERO, "this test has used some CPU");
    }

    #[test]
    fn a_process_cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 5 0 0";
        let per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as f64;
        assert_eq!(cpu_ms_of_stat(stat), Some(210.0 * 1000.0 / per_s));
        assert_eq!(cpu_ms_of_stat("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ms_of_stat(&own).is_some());
    }
}
