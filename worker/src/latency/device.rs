//! The device a latency figure belongs to: a short fingerprint stored with
//! every measurement, and the fuller profile a worker registers.

use serde::{Deserialize, Serialize};
use store::DeviceProfile;

/// The machine a measurement comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// CPU model as the OS reports it.
    pub cpu: String,
    /// Logical CPUs of the machine.
    pub logical_cpus: usize,
    /// Threads the measurement used.
    pub threads: usize,
}

impl Device {
    /// This machine, measured with `threads` threads.
    pub fn current(threads: usize) -> Self {
        Self {
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
        }
    }

    /// The machine without the thread count, e.g. `AMD EPYC 7B13 x2`.
    pub fn cpu_label(&self) -> String {
        format!("{} x{}", self.cpu, self.logical_cpus)
    }

    /// A short fingerprint, e.g. `AMD EPYC 7B13 x2 (1 thread)`.
    pub fn fingerprint(&self) -> String {
        let unit = if self.threads == 1 {
            "thread"
        } else {
            "threads"
        };
        format!(
            "{} x{} ({} {unit})",
            self.cpu, self.logical_cpus, self.threads
        )
    }
}

impl Device {
    /// The profile a worker registers: this device with the instruction-set
    /// extensions its kernels use and the machine's memory.
    pub fn profile(&self) -> DeviceProfile {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        DeviceProfile {
            cpu: self.cpu.clone(),
            logical_cpus: u32::try_from(self.logical_cpus).unwrap_or(u32::MAX),
            isa: isa_extensions(&info),
            memory_mib: crate::memory::available_memory().map(|b| b >> 20),
            latency_threads: u32::try_from(self.threads).unwrap_or(u32::MAX),
            speed_factor: None,
            runtimes: Vec::new(),
            references: Vec::new(),
        }
    }
}

/// The extensions that change how fast our kernels run, among those the
/// CPU reports (`flags` on x86, `Features` on ARM), in a fixed order.
pub fn isa_extensions(cpuinfo: &str) -> Vec<String> {
    const KNOWN: [&str; 9] = [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_vnni",
        "amx_tile",
        "asimd",
    ];
    let flags: std::collections::BTreeSet<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    KNOWN
        .iter()
        .filter(|k| flags.contains(*k))
        .map(|k| {
            if *k == "asimd" {
                "neon".to_owned()
            } else {
                (*k).to_owned()
            }
        })
        .collect()
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_come_from_the_flags_line_in_a_fixed_order() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 sse4_2 fma avx avx512f mmx\n";
        assert_eq!(
            isa_extensions(x86),
            ["sse4_2", "avx", "avx2", "fma", "avx512f"]
        );
        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\n";
        assert_eq!(isa_extensions(arm), ["neon"]);
        assert!(isa_extensions("").is_empty());
    }

    #[test]
    fn this_machine_has_a_profile() {
        let profile = Device::current(1).profile();
        assert!(!profile.cpu.is_empty() && profile.logical_cpus >= 1);
        assert_eq!(profile.latency_threads, 1);
    }
}
