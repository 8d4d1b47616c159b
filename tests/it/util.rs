//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh copy of the starter corpus in a temporary folder (only manifest,
/// keywords, images and documents: no index, no variants).
pub fn starter_corpus() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("corpus");
    copy_dir(&root().join("corpus/images"), &dst.join("images"));
    copy_dir(&root().join("corpus/documents"), &dst.join("documents"));
    for f in ["manifest.csv", "keywords.csv"] {
        std::fs::copy(root().join("corpus").join(f), dst.join(f)).unwrap();
    }
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// The result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run `chatprobe ARGS…` (quiet, no terminal) and return its result.
pub fn chatprobe(args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(args)
        .output()
        .expect("run chatprobe")
        .into()
}

/// The ids of the twelve starter-corpus images of a kind (`s` sensitive,
/// `b` benign), quoted and comma-separated for a spec's `items`.
pub fn corpus_images(kind: char) -> String {
    (1..=12)
        .map(|i| format!("\"img-{kind}{i:02}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run and require exit 0.
pub fn chatprobe_ok(args: &[&str]) -> Run {
    let r = chatprobe(args);
    assert_eq!(
        r.code, 0,
        "chatprobe {args:?} failed:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r
}

/// Read a CSV file as header + rows of strings.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let header = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// Rows of a CSV file as maps column → value.
pub fn csv_maps(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let (header, rows) = read_csv(path);
    rows.into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The URL a server child prints as its first line (`listening on URL`).
pub fn listening_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
        .to_string()
}

/// Wait until `cond` holds (a file shows an event), checking every 20 ms;
/// panics naming `what` after 300 s.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed().as_secs() < 300, "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
