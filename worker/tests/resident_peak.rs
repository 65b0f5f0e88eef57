//! The peak-RSS probe the training benchmark reports. It reads the whole
//! process's `VmHWM`, so it runs alone in this test binary: a test running
//! beside it in the same process could free memory between the reset and the
//! allocation and hide the 64 MiB this test adds.

use worker::memory::{reset_resident_peak, resident_now, resident_peak};

#[test]
fn the_peak_follows_a_large_allocation_and_resets() {
    assert!(reset_resident_peak(), "clear_refs is writable on Linux");
    let before = resident_peak().expect("VmHWM");
    let block = vec![1u8; 64 << 20];
    std::hint::black_box(&block);
    let during = resident_peak().expect("VmHWM");
    assert!(during >= before + (60 << 20), "{before} -> {during}");
    assert!(resident_now().expect("VmRSS") <= during);
    drop(block);
    assert!(reset_resident_peak());
    let after_reset = resident_peak().expect("VmHWM");
    assert!(
        after_reset + (60 << 20) <= during,
        "{during} -> {after_reset}"
    );
}
