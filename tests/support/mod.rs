//! Shared test helpers.
#![allow(dead_code)]
pub mod cli;
pub mod emulator;
pub mod hardening;
pub mod manifest_corpus;

/// Sends `signal` (`INT`, `TERM`, `HUP`) to `pid` with kill(2) from this process. Forking
/// `kill(1)` put tens of milliseconds (more on a loaded machine) between a test's "now" and
/// the signal, which tests that count the requests after it could not tell from a process
/// ignoring the signal.
pub fn send_signal(pid: u32, signal: &str) {
    let number = match signal {
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        "HUP" => libc::SIGHUP,
        other => panic!("no such signal in these tests: SIG{other}"),
    };
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, number) };
    assert_eq!(rc, 0, "kill -s {signal} {pid} failed");
}
