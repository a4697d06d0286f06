//! Finding data files for the "looked in" lists of [`crate::error::Error::DataNotFound`]: what is
//! wrong with a folder (missing, or a file given where a folder was expected), and which of a file's
//! names exists, so that a `.gz` that is there but cannot be opened is reported under its own name
//! (not as a missing unpacked file).

use std::path::{Path, PathBuf};

/// Why `folder` cannot hold data files (`None`: it is a directory), e.g. `no such directory` or
/// `a file, not a directory`.
pub fn folder_problem(folder: &Path) -> Option<String> {
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("a file, not a directory: give the folder that holds the files".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such directory".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Some("not searched: a parent is a file".into())
        }
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// What [`find_file`] found.
pub enum Found {
    /// A regular file that opens.
    File(PathBuf),
    /// None of the names exists.
    Missing,
    /// The first name that exists, and why it cannot be read (a broken link, a directory, ...).
    Unreadable(String),
}

/// The first of `names` in `folder` that is a regular file that opens; else the first that exists
/// but cannot be read, with the reason; else [`Found::Missing`].
pub fn find_file(folder: &Path, names: &[&str]) -> Found {
    let mut unreadable = None;
    for name in names {
        let path = folder.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue; // not there at all
        }
        let problem = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{name} is a link to nothing"),
            Err(e) => format!("{name} cannot be opened: {e}"),
            Ok(m) if !m.is_file() => format!("{name} is not a regular file"),
            Ok(_) => match std::fs::File::open(&path) {
                Ok(_) => return Found::File(path),
                Err(e) => format!("{name} cannot be opened: {e}"),
            },
        };
        unreadable.get_or_insert(problem);
    }
    unreadable.map_or(Found::Missing, Found::Unreadable)
}
