//! The high watermark checkpoint: one small text file in the partition
//! directory, replaced atomically (temporary file, fsync, rename, directory
//! fsync), so a crash leaves either the old value or the new one.
//!
//! Format: a version line then the offset, each followed by a newline
//! (`"1\n42\n"`). A missing or unreadable checkpoint means 0: the high
//! watermark only ever advances again from there, which is safe.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{io_err, LogError};
use super::fault::{self, Op};
use super::recovery::sync_dir;

const FILE_NAME: &str = "high-watermark";
const TMP_NAME: &str = "high-watermark.tmp";
const VERSION: &str = "1";

/// `dir/high-watermark`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The checkpointed high watermark, or 0 if there is none or it cannot be
/// read or parsed.
pub(crate) fn read(dir: &Path) -> u64 {
    fs::read_to_string(path(dir))
        .ok()
        .as_deref()
        .and_then(parse)
        .unwrap_or(0)
}

fn parse(text: &str) -> Option<u64> {
    let mut lines = text.split('\n');
    if lines.next()? != VERSION {
        return None;
    }
    let hw = lines.next()?.parse().ok()?;
    // A file without the final newline was not written by `write`.
    (lines.next()?.is_empty() && lines.next().is_none()).then_some(hw)
}

/// Durably replaces the checkpoint with `hw`. On error the old checkpoint
/// stays (or, if only the directory fsync failed, the new one may be in
/// place but not durable).
pub(crate) fn write(dir: &Path, hw: u64) -> Result<(), LogError> {
    let tmp = dir.join(TMP_NAME);
    let mut file = fault::check(Op::Checkpoint)
        .and_then(|()| File::create(&tmp))
        .map_err(io_err("create", &tmp))?;
    let written = file
        .write_all(format!("{VERSION}\n{hw}\n").as_bytes())
        .map_err(io_err("write", &tmp))
        .and_then(|()| file.sync_all().map_err(io_err("fsync", &tmp)));
    drop(file);
    if let Err(err) = written {
        // Best effort: a stray temporary file is ignored anyway.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    let target = path(dir);
    fs::rename(&tmp, &target).map_err(io_err("rename high watermark into", &target))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_falls_back_to_zero() {
        let tmp = tempfile::TempDir::new().unwrap();
        assert_eq!(read(tmp.path()), 0, "missing");
        write(tmp.path(), 42).unwrap();
        assert_eq!(fs::read_to_string(path(tmp.path())).unwrap(), "1\n42\n");
        assert_eq!(read(tmp.path()), 42);
        write(tmp.path(), u64::MAX).unwrap();
        assert_eq!(read(tmp.path()), u64::MAX);
        assert!(!tmp.path().join(TMP_NAME).exists());
        for bad in [
            "",
            "1\n",
            "1\n42",
            "2\n42\n",
            "1\n-4\n",
            "1\n42\n7\n",
            "\u{0}",
        ] {
            fs::write(path(tmp.path()), bad).unwrap();
            assert_eq!(read(tmp.path()), 0, "{bad:?}");
        }
        fs::remove_file(path(tmp.path())).unwrap();
        fs::create_dir(path(tmp.path())).unwrap();
        assert_eq!(read(tmp.path()), 0, "a directory");
    }
}
