//! Files that are either entirely written or not there at all: the bytes go to `PATH.tmp`, which
//! is renamed over `PATH` only once complete, and removed again if anything fails (a full disk, a
//! vanished folder), so no run ever leaves half a checkpoint or a stray temporary file behind.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (the parent folder must exist).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        // On disk before the rename, so a crash cannot leave a renamed but empty file.
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
