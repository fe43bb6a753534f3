//! The few operating-system calls std does not offer. Linux only: the parent-death
//! signal is what guarantees that no server outlives the process that started it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

pub(crate) use libc::{SIGINT, SIGKILL, SIGQUIT};

/// Makes the child receive `signal` when the thread that spawns it dies, for
/// whatever reason, SIGKILL included.
///
/// The kernel ties the parent-death signal to the spawning *thread*, so the caller
/// must spawn from a thread that lives as long as the child (see `Keeper`).
pub(crate) fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    // SAFETY: `getpid` is async-signal-safe and is called in the parent.
    let parent = unsafe { libc::getpid() };
    let hook = move || {
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` and `getppid` are async-signal-safe
        // system calls that touch no memory of ours; this closure runs between fork
        // and exec and allocates nothing.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal
            // will ever come, so refuse to exec.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe calls (see above).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Sends `signal` to `pid`. A process that is already gone is not an error.
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Runs `hook` when the process exits normally (returning from `main` or
/// `std::process::exit`), as test harnesses and criterion do.
pub(crate) fn at_exit(hook: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `hook` is a plain `extern "C" fn()` with static lifetime.
    match unsafe { libc::atexit(hook) } {
        0 => Ok(()),
        _ => Err(io::Error::other("atexit registration failed")),
    }
}
