//! Large buffers go back to the system when freed: the process asks glibc's
//! allocator for a fixed mmap threshold.
//!
//! By default glibc raises its mmap threshold each time it unmaps a large
//! buffer (up to 32 MiB), so from then on large buffers, such as a rendered
//! room page of a megabyte or two, come from its heaps, where freed memory
//! stays with the process. Seen: after an attack that had hundreds of pages
//! rendered and refused, RSS stayed 28% above its level before, for good. With
//! a fixed threshold (`MALLOC_MMAP_THRESHOLD_=131072`) every buffer of 128 KiB
//! or more gets a mapping of its own, unmapped when freed, and RSS came back to
//! within 1% (docs/security.md, "Every limit").
//!
//! glibc reads that setting from the environment only when a process starts,
//! and changing it later takes `mallopt`, which Rust can only call through
//! `unsafe`. So a server started without it starts itself again with it, once,
//! before anything else runs: the same program, arguments and process id
//! (`exec`). A value the operator set is kept as it is.

/// The variable glibc reads at start, and the threshold we ask for: glibc's own
/// starting value, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: (&str, &str) = ("MALLOC_MMAP_THRESHOLD_", "131072");

/// Starts the process again with a fixed mmap threshold, unless it has one.
/// Returns only when it has one already, or when starting again failed (the
/// server then runs with glibc's defaults: more memory kept after a burst of
/// large pages, nothing else).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_large_buffers_back() {
    use std::os::unix::process::CommandExt;

    let (variable, threshold) = MMAP_THRESHOLD;
    if std::env::var_os(variable).is_some() {
        return;
    }
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(program);
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    // `exec` returns only if it failed.
    let _failed = again.args(args).env(variable, threshold).exec();
}

/// Other platforms' allocators need no asking.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_large_buffers_back() {}
