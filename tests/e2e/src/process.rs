//! What the kernel says of a process: its CPU time so far.

/// The CPU time process `pid` (a number, or `self`) has used so far, user and system, in the
/// kernel's user-visible clock ticks (`USER_HZ`: 100 a second on Linux); `None` when it has
/// no `/proc/<pid>/stat` (it exited, or this is not Linux).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name (which may hold spaces) in parentheses start with
    // the third, the state: `utime` and `stime`, the 14th and 15th, are the 12th and 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut times = rest.split_whitespace().skip(11).map(|field| field.parse::<u64>().ok());
    Some(times.next()?? + times.next()??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_time_and_a_missing_one_none() {
        // 50 ms of CPU time of its own, five ticks, so that the count is past zero.
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(started.elapsed());
        }
        assert!(cpu_ticks("self").is_some_and(|ticks| ticks > 0));
        assert_eq!(cpu_ticks("0"), None);
    }
}
