//! The shim's system calls: fork, subreaper, closing inherited fds.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// Detaches from the caller: fork, the first child starts a new session and forks again,
/// and only the grandchild returns. The original process waits for the first child and
/// exits 0; the caller's stdout pipe stays open in the grandchild for the ready line.
/// Must be called while the process has one thread.
pub fn daemonize() -> nix::Result<()> {
    use nix::unistd::{ForkResult, fork, setsid};
    // SAFETY: the process is single-threaded at this point (called first thing in main), so
    // the child may run arbitrary code.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            let _ = nix::sys::wait::waitpid(child, None);
            std::process::exit(0);
        }
        ForkResult::Child => {}
    }
    setsid()?;
    // SAFETY: still single-threaded (the first child of a single-threaded process).
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => Ok(()),
    }
}

/// Makes this process the reaper of its orphaned descendants.
pub fn set_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Closes every fd from 3 up, except `keep`.
pub fn close_fds_from_3(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing an fd number this process inherited and does not otherwise use;
            // the read_dir handle above is already dropped.
            unsafe { libc::close(fd) };
        }
    }
}

/// Points fd `target` (0, 1 or 2) at `file`.
pub fn redirect(file: &std::fs::File, target: i32) -> std::io::Result<()> {
    // SAFETY: dup2 on two valid fds; the old `target` is atomically replaced.
    let r = unsafe { libc::dup2(file.as_raw_fd(), target) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Makes `cmd` run in a private mount namespace without the cgroup v2 hierarchy of a
/// hybrid host (`/sys/fs/cgroup/unified`), so crun sees a plain cgroup v1 host.
pub fn hide_unified_cgroup(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes raw system
    // calls (unshare, mount, umount2) with static arguments; no allocation, no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let root = c"/".as_ptr();
            if libc::mount(
                std::ptr::null(),
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH);
            Ok(())
        });
    }
}

/// One malloc arena for the whole shim (its threads allocate little), so memory freed by a
/// finished thread is not kept in a per-thread arena.
pub fn small_heap() {
    // SAFETY: mallopt with a valid parameter; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Lowers the calling thread's priority (nice 10), and so that of the children it spawns:
/// for cleanup that nobody waits on (the runtime's delete of an exited container), which
/// should not take CPU from the next container's start.
pub fn background_priority() {
    // SAFETY: plain syscalls on the calling thread (nice is per thread on Linux, and a child
    // forked from this thread inherits it).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Gives freed heap pages back to the kernel.
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory; safe to call from any thread.
    unsafe { libc::malloc_trim(0) };
}

/// Sets a terminal's window size (TIOCSWINSZ on its pty master).
pub fn set_window_size(fd: std::os::fd::BorrowedFd<'_>, cols: u16, rows: u16) -> std::io::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Unmaps this process's clean, read-only file pages: the code and read-only data of the
/// binary and its libraries, which the page cache holds anyway (shared with every other
/// shim) and which a later access maps again with a minor fault. Only mappings that are not
/// writable and hold no private (copied-on-write) page are touched, so nothing is lost;
/// a relocated read-only section (RELRO) has private pages and is skipped.
pub fn release_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first
            .split_once('-')
            .and_then(|(s, e)| Some((usize::from_str_radix(s, 16).ok()?, usize::from_str_radix(e, 16).ok()?)))
        {
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            candidate = (matches!(perms, "r-xp" | "r--p") && path.starts_with('/')).then_some((start, end));
        } else if first == "Anonymous:" {
            let private = fields.next().is_none_or(|kb| kb != "0");
            if let (Some((start, end)), false) = (candidate.take(), private) {
                // SAFETY: [start, end) is a whole private, read-only, file-backed mapping of
                // this process with no anonymous (modified) page; MADV_DONTNEED on it only
                // drops page-table entries, and the next access re-reads the unchanged file
                // page. No other thread can write to it (it is not writable).
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
    }
}

/// A new close-on-exec eventfd (cgroup v1 OOM notifications through `cgroup.event_control`).
pub fn eventfd() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: eventfd takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec inotify instance watching `path` for modifications (cgroup v2
/// `memory.events`, which the kernel marks modified when a counter changes).
pub fn inotify_modify(path: &std::path::Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: inotify_init1 takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: `c` is a NUL-terminated path valid for the call; `fd` is an inotify instance.
    let w = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
    if w < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
