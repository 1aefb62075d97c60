//! A seam for tests to make the log's file operations fail like a full disk.
//!
//! The write paths go through these hooks, each naming its operation. In
//! test builds a per-thread plan (see [`plan`]) can make chosen calls fail
//! with ENOSPC, writes after writing part of their bytes; otherwise, and in
//! every other build, the hooks just do the operation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The operations a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Writing a batch to a segment's `.log`.
    LogWrite,
    /// Writing an entry to a segment's `.index`.
    IndexWrite,
    /// fsync of a segment's `.log`.
    LogSync,
    /// Cutting a segment's `.log` (set_len).
    LogTruncate,
    /// Creating a new segment's `.index` (after its `.log`).
    CreateIndex,
    /// Deleting a segment's `.log`.
    RemoveLog,
    /// fsync of the partition directory.
    DirSync,
    /// Writing the high watermark checkpoint.
    Checkpoint,
}

/// `file.write_all_at(buf, pos)`, unless a test makes it fail.
pub(crate) fn write_all_at(op: Op, file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    #[cfg(test)]
    if let Some(partial) = plan::hit(op) {
        file.write_all_at(buf.get(..partial).unwrap_or(buf), pos)?;
        return Err(plan::disk_full());
    }
    let _ = op;
    file.write_all_at(buf, pos)
}

/// `Ok(())`, unless a test makes `op` fail: call it before doing `op`.
pub(crate) fn check(op: Op) -> io::Result<()> {
    #[cfg(test)]
    if plan::hit(op).is_some() {
        return Err(plan::disk_full());
    }
    let _ = op;
    Ok(())
}

/// What the tests arm, per thread (each test runs on its own).
#[cfg(test)]
pub(crate) mod plan {
    use std::cell::RefCell;
    use std::io;

    use super::Op;

    struct Armed {
        op: Op,
        /// Calls to let through first.
        skip: usize,
        /// Bytes a failing write still writes.
        partial: usize,
        /// Fails every later call too, until [`clear`].
        sticky: bool,
    }

    thread_local! {
        static ARMED: RefCell<Vec<Armed>> = const { RefCell::new(Vec::new()) };
    }

    /// Makes the call of `op` after `skip` more fail once, writing `partial`
    /// bytes first if it is a write.
    pub(crate) fn fail(op: Op, skip: usize, partial: usize) {
        arm(op, skip, partial, false);
    }

    /// Makes every call of `op` fail (writing nothing) until [`clear`]: the
    /// disk is full.
    pub(crate) fn fail_always(op: Op) {
        arm(op, 0, 0, true);
    }

    /// Space is back: nothing fails any more.
    pub(crate) fn clear() {
        ARMED.with(|armed| armed.borrow_mut().clear());
    }

    fn arm(op: Op, skip: usize, partial: usize, sticky: bool) {
        ARMED.with(|armed| {
            armed.borrow_mut().push(Armed {
                op,
                skip,
                partial,
                sticky,
            });
        });
    }

    /// `Some(bytes to write)` if this call of `op` must fail.
    pub(super) fn hit(op: Op) -> Option<usize> {
        ARMED.with(|armed| {
            let mut armed = armed.borrow_mut();
            let i = armed.iter().position(|a| a.op == op)?;
            let entry = armed.get_mut(i)?;
            if entry.skip > 0 {
                entry.skip -= 1;
                return None;
            }
            let partial = entry.partial;
            if !entry.sticky {
                armed.remove(i);
            }
            Some(partial)
        })
    }

    /// ENOSPC, as the OS reports it.
    pub(super) fn disk_full() -> io::Error {
        io::Error::from_raw_os_error(28)
    }
}
