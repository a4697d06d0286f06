//! A training run's output folder: refused when it holds another run (unless the user says
//! `--overwrite` or `--resume`), and locked while a run writes to it, so two runs never interleave
//! their files. The lock is a file holding the owner's pid; a lock whose process has gone (a crash,
//! a killed run) is taken over with a note.

use aegpu::error::{Error, Result};
use aegpu::expert::resume::STATE_FILE;
use std::io::Write;
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = ".aegpu.lock";

/// The files a run writes; their presence means the folder holds a run.
const RUN_FILES: [&str; 3] = ["metrics.jsonl", "model.safetensors", STATE_FILE];
/// The pictures a run writes at its end (removed with the rest on --overwrite).
const PICTURES: [&str; 6] =
    ["recon.png", "filters.png", "latent.png", "grid.png", "samples.png", "curves.png"];

/// What the caller means to do with the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// A new run: the folder must not hold one.
    Fresh,
    /// A new run replacing whatever run the folder holds.
    Overwrite,
    /// Continue the run the folder holds.
    Resume,
}

/// The locked output folder of a run; the lock goes when this is dropped.
pub(super) struct RunDir {
    pub path: PathBuf,
    lock: PathBuf,
}

impl RunDir {
    /// Creates (if needed) and locks `path` for a run as `claim` says.
    pub fn claim(path: &Path, claim: Claim) -> Result<RunDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::Config(format!("--out {}: a file, not a folder", path.display())));
        }
        let holds_run = RUN_FILES.iter().any(|f| path.join(f).exists());
        if claim == Claim::Fresh && holds_run {
            return Err(Error::Config(format!(
                "{dir} already holds a training run{what}.\n  \
                 Continue it with `aegpu train --resume {dir}`, replace it with --overwrite, or choose another --out",
                dir = path.display(),
                what = describe_run(path)
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock = take_lock(path)?;
        let dir = RunDir { path: path.to_path_buf(), lock };
        if claim == Claim::Overwrite {
            for f in RUN_FILES.iter().chain(&PICTURES) {
                let file = path.join(f);
                if file.exists() {
                    std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
                }
            }
        }
        Ok(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// " (epoch 3 of 10)" from the folder's metrics, or "" when they cannot be read.
fn describe_run(path: &Path) -> String {
    let lines = std::fs::read_to_string(path.join("metrics.jsonl")).unwrap_or_default();
    match lines.lines().filter(|l| !l.trim().is_empty()).count() {
        0 => String::new(),
        n => format!(" ({n} epoch{} recorded)", if n == 1 { "" } else { "s" }),
    }
}

/// Creates the lock file with our pid, or says who holds it.
fn take_lock(dir: &Path) -> Result<PathBuf> {
    let lock = dir.join(LOCK_FILE);
    for _ in 0..2 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut file) => {
                file.write_all(std::process::id().to_string().as_bytes()).map_err(|e| Error::io(&lock, e))?;
                return Ok(lock);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                let pid: Option<u32> = holder.trim().parse().ok();
                if pid.is_some_and(is_running) {
                    return Err(Error::Config(format!(
                        "{} is in use by another aegpu run (pid {}); wait for it to finish or choose another \
                         --out (if no run is active, delete {})",
                        dir.display(),
                        pid.unwrap_or_default(),
                        lock.display()
                    )));
                }
                // The holder is gone (it crashed or was killed): take the folder over.
                note!(
                    "note: removing a stale lock of {} left by a run that is no longer running",
                    dir.display()
                );
                std::fs::remove_file(&lock).map_err(|e| Error::io(&lock, e))?;
            }
            Err(e) => return Err(Error::io(&lock, e)),
        }
    }
    Err(Error::Config(format!("could not lock {}: another run keeps taking it", dir.display())))
}

/// Whether process `pid` exists. Where `/proc` is missing (not Linux), every holder counts as
/// running: the user removes a stale lock by hand, as the message says.
fn is_running(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}
