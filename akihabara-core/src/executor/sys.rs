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

/// Sends SIGKILL to one process.
fn kill_pid(pid: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; pid 0, -1 and 1 (our
    // group, everyone, init) are excluded above.
    let _ = unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Makes the child the leader of a new session (and so of a new process
/// group whose id is its pid) before `exec`.
pub(crate) fn new_session(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid, which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The inode of the pipe behind our descriptor `fd` (from `/proc/self/fd`).
pub(crate) fn pipe_inode(fd: std::os::fd::RawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|m| m.ino())
}

/// The session id of `pid`, from `/proc/PID/stat` (field 6, counted after
/// the parenthesised command name, which may itself hold spaces and `)`).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // state ppid pgrp session
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// The parent of `pid`, from `/proc/PID/stat` (field 4).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // state ppid
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` holds a descriptor on one of `pipes`.
fn holds_pipe(pid: i32, pipes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let t = target.to_string_lossy();
            t.strip_prefix("pipe:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|ino| pipes.contains(&ino))
        })
    })
}

/// Kills whatever is left of a job: every process of its session `sid`
/// (`setpgid` cannot leave a session) and every process, in any session,
/// that still holds one of the job's output `pipes` (`setsid` escapes the
/// session, but a process that writes to the job's output keeps its pipe).
/// Returns how many processes it killed.
pub(crate) fn kill_job_tree(sid: u32, pipes: &[u64]) -> usize {
    let Ok(sid) = i32::try_from(sid) else {
        return 0;
    };
    let me = std::process::id() as i32;
    // A child of ours between fork and exec (another job starting) holds
    // every descriptor we hold, this job's pipes too, for a moment: it is
    // not this job's. The job's own escaped processes are never our
    // children (the job's leader is, and is in the session).
    kill_matching(|pid| {
        session_of(pid) == Some(sid) || (holds_pipe(pid, pipes) && parent_of(pid) != Some(me))
    })
}

/// SIGKILLs every process (but this one and init) that `doomed` picks, and
/// repeats while it finds some, since a dying process may have forked.
fn kill_matching(doomed: impl Fn(i32) -> bool) -> usize {
    let me = std::process::id() as i32;
    let mut killed = 0;
    for _ in 0..8 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return killed;
        };
        let victims: Vec<i32> = procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me && pid > 1 && doomed(pid))
            .collect();
        if victims.is_empty() {
            break;
        }
        for pid in &victims {
            kill_pid(*pid);
        }
        killed += victims.len();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    killed
}

/// The real uid of `pid`, from `/proc/PID/status`.
fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kills every process whose real uid is `uid` (a job user's leftovers).
/// Refuses uid 0 and our own uid. Returns how many it killed.
pub(crate) fn kill_user(uid: u32) -> usize {
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    if uid == 0 || uid == me {
        return 0;
    }
    kill_matching(|pid| uid_of(pid) == Some(uid))
}

/// Our effective uid.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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
