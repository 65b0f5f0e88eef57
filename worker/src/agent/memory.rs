//! How much memory this worker may use: its cgroup's limit (containers,
//! Kubernetes), else the machine's memory. A trial whose network would need
//! more than its share fails before it is built, instead of the process
//! being killed by the allocator or the OOM killer.

use std::path::Path;

/// The first number in `file`, if it holds one (`max` reads as none).
fn number_in(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The `key:` line of a `/proc` status file (`1234 kB`), bytes.
fn kib_field(file: &str, key: &str) -> Option<u64> {
    let info = std::fs::read_to_string(file).ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `MemTotal` of `/proc/meminfo`, bytes.
fn machine_memory() -> Option<u64> {
    kib_field("/proc/meminfo", "MemTotal")
}

/// This process's resident memory now (`VmRSS`), bytes; Linux only.
pub fn resident_now() -> Option<u64> {
    kib_field("/proc/self/status", "VmRSS")
}

/// This process's peak resident memory (`VmHWM`) since it started or since
/// the last [`reset_resident_peak`], bytes; Linux only.
pub fn resident_peak() -> Option<u64> {
    kib_field("/proc/self/status", "VmHWM")
}

/// Starts a new peak for [`resident_peak`] (writes `5` to
/// `/proc/self/clear_refs`), so a benchmark can report the peak of one phase.
/// Returns whether the kernel accepted it.
pub fn reset_resident_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The memory this process may use, bytes: the cgroup v2 or v1 limit when
/// one is set, else the machine's memory; `None` where neither is readable.
pub fn available_memory() -> Option<u64> {
    let cgroup = number_in(Path::new("/sys/fs/cgroup/memory.max"))
        .or_else(|| number_in(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes")));
    let machine = machine_memory();
    match (cgroup, machine) {
        // cgroup v1 reports "no limit" as a huge number.
        (Some(limit), Some(total)) => Some(limit.min(total)),
        (limit, total) => limit.or(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_some_memory() {
        let bytes = available_memory().expect("readable on Linux");
        assert!(bytes > 64 << 20, "{bytes}");
    }
}
