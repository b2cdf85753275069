//! Output files that are whole or absent: each is written to a temporary file beside it and renamed into place
//! when complete, so that a second Ctrl-C (which exits at once, see [`crate::signals`]) never leaves a
//! truncated `.hlog`, JSON or HTML file that a script would take for a report.
//!
//! A command first [`expect`]s the paths it will write; a second Ctrl-C calls [`abandon`], which removes the
//! temporary files in progress and every expected path not yet written by this command (a report an earlier
//! run left there would otherwise pass for this one's). A file renamed into place is this command's and
//! complete, and stays.
//!
//! A path that is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO, a shell's `>(gzip > log.gz)`) is
//! written directly and never renamed over or removed: it is where the user wants the bytes to go, and
//! renaming a temporary file over `/dev/null` (or removing it after a failed run), as root in a container,
//! replaced the system's device with a regular file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Paths removed if the process exits at once: temporary files being written, and outputs not yet written.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn pending() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when `path` exists and is not a regular file (a device, a FIFO, a socket, a directory; symbolic
/// links followed): it is written in place, never replaced or removed.
pub(crate) fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file())
}

/// This command will write `path`: until it has, an exit at once ([`abandon`]) removes whatever is there
/// (unless it is not a regular file: see the [module docs](self)).
pub fn expect(path: &Path) {
    if !is_special(path) {
        pending().insert(path.to_path_buf());
    }
}

/// Removes every temporary file in progress and every [`expect`]ed output not yet written; called just before
/// the process exits at once. It keeps the lock, so no file is renamed into place after it.
pub fn abandon() {
    let mut p = pending();
    for path in std::mem::take(&mut *p) {
        let _ = std::fs::remove_file(path);
    }
    // Held until the process exits: a writer about to rename waits here forever.
    std::mem::forget(p);
}

/// Removes every [`expect`]ed output this command has not written (and forgets them): a command that failed
/// or was interrupted before writing them calls it, so that what an earlier run left there is not read as this
/// one's result (`run` after exit 3; `tune` and `stream` after a failure or Ctrl-C). Files it wrote stay.
pub fn discard_unwritten() {
    let mut p = pending();
    for path in std::mem::take(&mut *p) {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes what an earlier run left at `path`, an output this command did not write; a path that is not a
/// regular file (`/dev/null`) is left alone.
pub fn remove_stale(path: &Path) {
    if !is_special(path) {
        let _ = std::fs::remove_file(path);
    }
}

/// The temporary file beside `path`: `.NAME.PID.tmp` in the same directory (so the rename stays on one file
/// system).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// An output file being written: created as a temporary file beside its path, renamed into place by
/// [`Staged::commit`]; dropped without it, the temporary file is removed. A path that is not a regular file
/// is written directly, and commit does nothing.
#[derive(Debug)]
pub struct Staged {
    /// The temporary file (`None`: writing to `path` itself, a device or a FIFO).
    temp: Option<PathBuf>,
    /// Where it goes when complete.
    path: PathBuf,
    /// Renamed into place (or given up).
    done: bool,
}

impl Staged {
    /// Creates the temporary file for `path` (and [`expect`]s `path`); write it through the returned file and
    /// flush every writer over it before [`commit`](Staged::commit).
    pub fn create(path: &Path) -> io::Result<(Staged, File)> {
        if is_special(path) {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            let staged = Staged {
                temp: None,
                path: path.to_path_buf(),
                done: true,
            };
            return Ok((staged, file));
        }
        let temp = temp_path(path);
        let mut p = pending();
        let file = File::create(&temp)?;
        p.insert(temp.clone());
        p.insert(path.to_path_buf());
        let staged = Staged {
            temp: Some(temp),
            path: path.to_path_buf(),
            done: false,
        };
        Ok((staged, file))
    }

    /// Renames the (flushed) file into place.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(temp) = self.temp.clone() else {
            return Ok(());
        };
        let mut p = pending();
        std::fs::rename(&temp, &self.path)?;
        self.done = true;
        p.remove(&temp);
        p.remove(&self.path);
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let (false, Some(temp)) = (self.done, &self.temp) {
            let mut p = pending();
            let _ = std::fs::remove_file(temp);
            p.remove(temp);
        }
    }
}

/// Writes `contents` to `path` whole: to a temporary file first, renamed into place.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (staged, mut file) = Staged::create(path)?;
    file.write_all(contents.as_ref())?;
    file.flush()?;
    drop(file);
    staged.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.hlog");
        let (staged, mut f) = Staged::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        assert!(!path.exists(), "nothing at the path while it is written");
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"half");
        let (staged, mut g) = Staged::create(&path).unwrap();
        g.write_all(b"other").unwrap();
        drop((staged, g));
        assert_eq!(std::fs::read(&path).unwrap(), b"half", "the old file stays");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        write(&path, "whole").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole");
    }

    /// `run --json /dev/null` (or `--hlog /dev/full`) as root renamed its temporary file over the device,
    /// leaving a regular file where `/dev/null` was; a failed run removed the device. A path that is not a
    /// regular file (here a FIFO, which any user can make) is written in place, and is neither replaced nor
    /// removed.
    #[test]
    fn a_device_or_fifo_is_written_in_place_never_replaced_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write(&fifo, "report").unwrap();
        assert_eq!(reader.join().unwrap(), "report");
        let is_fifo = |p: &Path| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).unwrap().file_type().is_fifo()
        };
        assert!(is_fifo(&fifo), "still the FIFO");
        remove_stale(&fifo);
        assert!(is_fifo(&fifo), "not removed as a stale output");
        // (Not `discard_unwritten` itself: other tests' expected files share the list.)
        expect(&fifo);
        assert!(
            !pending().contains(&fifo),
            "a failed run or a second Ctrl-C would remove it"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file: {names:?}");
        // A device that refuses the bytes is an error, not a silent loss.
        let full = Path::new("/dev/full");
        if full.exists() {
            assert!(write(full, "report").is_err());
        }
    }
}
