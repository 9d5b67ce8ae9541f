//! Where and how urgently the media threads run. Audio is due every 20 ms whatever else the
//! machine does, so the media threads (a fixed few, one per core by default) get:
//! - **a core each**, when there are exactly as many threads as cores the process may use (the
//!   default on a machine or a cpuset of its own). Left to itself the kernel at times runs two
//!   busy media threads on one core while the other core serves lighter work, and both fall
//!   behind: at 200 calls on two cores, `bench/media.py` counted 33,000 late frames in 25 s
//!   unpinned and 400 pinned. With fewer threads than cores (a CPU quota on a shared host, or
//!   `media.threads` set lower) nothing is pinned: several such processes would otherwise all
//!   crowd onto the first cores.
//! - **a lower nice value** than the rest of the process (signalling, API, database): when the
//!   CPU is short they are served first, and the ticks stay on time (the same run: no late
//!   frame at nice -10). This is FreeSWITCH's and Asterisk's "real-time priority" idea without
//!   real-time scheduling, which measured worse here and can starve the signalling outright.
//!
//! Both need nothing but Linux; a lower nice value needs root or `CAP_SYS_NICE`, and without
//! it the threads run at the default, with one warning.

use std::sync::atomic::{AtomicBool, Ordering};

/// What one media thread asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadPlacement {
    /// The CPU to run on, if pinned.
    pub cpu: Option<usize>,
    /// The nice value to take (0: leave the inherited one).
    pub nice: i32,
}

/// The placement of each of `threads` media threads: pinned one per CPU the process may use
/// when `pin` and there are exactly as many CPUs, else unpinned.
pub(crate) fn plan(threads: usize, pin: bool, nice: i32) -> Vec<ThreadPlacement> {
    let cpus = if pin { allowed_cpus() } else { Vec::new() };
    let pinned = cpus.len() == threads;
    (0..threads)
        .map(|i| ThreadPlacement {
            cpu: pinned.then(|| cpus[i]),
            nice,
        })
        .collect()
}

/// Applies `placement` to the calling thread; what the system refuses is warned about once
/// per process and otherwise ignored (the thread runs, less well placed).
pub(crate) fn apply(placement: ThreadPlacement) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(what) = apply_here(placement)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "media threads: {what}; audio may run late on a busy machine (media.thread_nice, media.pin_threads)"
        );
    }
}

#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(target_os = "linux")]
fn apply_here(placement: ThreadPlacement) -> Result<(), String> {
    use rustix::process::setpriority_process;
    use rustix::thread::{CpuSet, gettid, sched_setaffinity};
    let mut refused = Vec::new();
    if let Some(cpu) = placement.cpu {
        let mut set = CpuSet::new();
        set.set(cpu);
        if let Err(e) = sched_setaffinity(None, &set) {
            refused.push(format!("cannot pin to CPU {cpu} ({e})"));
        }
    }
    // On Linux a nice value belongs to a thread: PRIO_PROCESS with a thread id sets that
    // thread's alone.
    if placement.nice != 0
        && let Err(e) = setpriority_process(Some(gettid()), placement.nice)
    {
        refused.push(format!("cannot take nice {} ({e})", placement.nice));
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join(", "))
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

#[cfg(not(target_os = "linux"))]
fn apply_here(_: ThreadPlacement) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn threads_are_pinned_one_per_allowed_cpu_only_when_they_match_the_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let plan_all = plan(cpus.len(), true, -5);
        assert_eq!(
            plan_all.iter().map(|p| p.cpu).collect::<Vec<_>>(),
            cpus.iter().map(|&c| Some(c)).collect::<Vec<_>>()
        );
        assert!(plan_all.iter().all(|p| p.nice == -5));
        assert!(
            plan(cpus.len() + 1, true, 0)
                .iter()
                .all(|p| p.cpu.is_none())
        );
        if cpus.len() > 1 {
            // Fewer threads than CPUs: a share of a bigger machine, left to the kernel.
            assert!(
                plan(cpus.len() - 1, true, 0)
                    .iter()
                    .all(|p| p.cpu.is_none())
            );
        }
        assert!(plan(1, false, 0).iter().all(|p| p.cpu.is_none()));
    }

    #[test]
    fn a_pinned_thread_runs_on_its_cpu() {
        let cpu = *allowed_cpus().last().unwrap();
        let placement = ThreadPlacement {
            cpu: Some(cpu),
            nice: 0,
        };
        let seen = std::thread::spawn(move || {
            apply(placement);
            let set = rustix::thread::sched_getaffinity(None).unwrap();
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&c| set.is_set(c))
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![cpu]);
    }

    #[test]
    fn a_raised_nice_value_is_the_threads_alone() {
        // Raising the value (less urgent) needs no privilege, so this runs anywhere.
        let own = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let theirs = std::thread::spawn(|| {
            apply(ThreadPlacement { cpu: None, nice: 5 });
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(theirs, 5);
        let after = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(after, own);
    }
}
