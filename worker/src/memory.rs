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

/// `MemTotal` of `/proc/meminfo`, bytes.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
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
