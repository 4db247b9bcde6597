//! The few system calls the executors need, through libc. The only module of
//! the crate that allows `unsafe`.

use std::io;

/// Sends `signal` to every process of the group `pgid`.
pub(crate) fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal group 0 or 1",
        ));
    }
    // SAFETY: killpg has no memory-safety preconditions; the group id was
    // checked above so it never addresses our own group (0) or init's (1).
    let r = unsafe { libc::killpg(pgid, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Resource limits applied in the child before `exec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rlimits {
    /// RLIMIT_CPU, seconds.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_AS, bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_FSIZE, bytes.
    pub file_size: Option<u64>,
}

/// Makes `cmd` set `limits` (and no core dumps) in the child before exec.
pub(crate) fn apply_rlimits(cmd: &mut tokio::process::Command, limits: Rlimits) {
    let set = move |resource, value: u64| -> io::Result<()> {
        let lim = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass and is async-signal-safe.
        if unsafe { libc::setrlimit(resource, &lim) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the closure runs in the forked child before exec; it only calls
    // setrlimit (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            set(libc::RLIMIT_CORE, 0)?;
            if let Some(v) = limits.cpu_seconds {
                set(libc::RLIMIT_CPU, v)?;
            }
            if let Some(v) = limits.address_space {
                set(libc::RLIMIT_AS, v)?;
            }
            if let Some(v) = limits.file_size {
                set(libc::RLIMIT_FSIZE, v)?;
            }
            Ok(())
        });
    }
}

/// Free space of the file system holding `path`, in MiB.
pub(crate) fn free_disk_mb(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64) / (1024 * 1024))
}
