//! Small file-system helpers used by every stage: atomic writes (temp file in
//! the same folder, fsync, rename) so that a crash never leaves half a file,
//! and progress bars that hide themselves when output is not a terminal.

use std::io::{self, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Write `path` atomically: `fill` writes into a temporary file beside it,
/// which is flushed, synced and renamed over `path` only if `fill` succeeds.
/// The file's mode is a new file's (0666 less the umask: 0644 under 022).
pub fn atomic_write<E, F>(path: &Path, fill: F) -> Result<(), E>
where
    E: From<io::Error>,
    F: FnOnce(&mut io::BufWriter<&std::fs::File>) -> Result<(), E>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut b = tempfile::Builder::new();
    b.prefix(".chatprobe-tmp-");
    // A dataset is for collaborators and web servers too: the file gets
    // the mode any new file would (0666 under the user's umask), not the
    // temporary file's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = b.tempfile_in(dir)?;
    {
        let mut w = io::BufWriter::new(tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Write bytes to `path` atomically.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

/// A progress bar of `len` steps; hidden when stderr is not a terminal or
/// when `quiet` is set.
pub fn progress_bar(len: u64, message: &str, quiet: bool) -> ProgressBar {
    let pb = progress_bar_with(
        len,
        "{msg:>10} [{elapsed_precise}] {bar:30} {pos}/{len} ({per_sec}, eta {eta})",
        quiet,
    );
    pb.set_message(message.to_string());
    pb
}

/// A progress bar of `len` steps drawn with `template` (indicatif syntax);
/// hidden like [`progress_bar`].
pub fn progress_bar_with(len: u64, template: &'static str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    pb.set_style(ProgressStyle::with_template(template).expect("static progress template"));
    pb
}

/// `path` as it would be typed from the working folder: relative, with
/// `..` where needed, so that run.json never holds the researcher's home
/// folder. Falls back to the path as given when the working folder is
/// unknown.
pub fn relative_to_cwd(path: &Path) -> String {
    let Ok(cwd) = std::env::current_dir().and_then(|d| d.canonicalize()) else {
        return path.display().to_string();
    };
    let abs = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let (a, b): (Vec<_>, Vec<_>) = (cwd.components().collect(), abs.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        return ".".into();
    }
    out.display().to_string()
}

#[cfg(test)]
mod tests {
    /// An atomically written file has the mode a new file gets under the
    /// process's umask (0644 under 022), not a temporary file's 0600.
    #[cfg(unix)]
    #[test]
    fn an_atomic_write_gets_a_new_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let p = dir.path().join("atomic.csv");
        super::atomic_write_bytes(&p, b"a,b\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{mode:o} (a new file gets {want:o})");
    }
}
