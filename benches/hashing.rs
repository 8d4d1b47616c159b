//! `make bench` — hashing speed of the corpus stage against the tools a
//! researcher would otherwise use, in one run on the same files:
//!
//! 1. chatprobe's hashing (read, MD5, decode, pHash + dHash) on all cores;
//! 2. the floor: only reading and decoding the same files on all cores, to
//!    RGB (what any tool must do), and as chatprobe does (JPEGs to luma only);
//! 3. Python hashlib MD5 + imagehash pHash, one process (a plain script) and a
//!    pool of one process per core;
//! 4. the whole `chatprobe corpus index` command on those files (adds SHA-256,
//!    CSV and the atomic write).
//!
//! The 500 files are fresh copies of the starter corpus images (PNG and JPEG,
//! 800×600), so they are corpus-sized and all distinct. Each figure is the
//! best of three passes; ratios are from this one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chatprobe::corpus::hash::{decode_image, decode_jpeg_luma, md5_hex, PerceptualHasher};
use chatprobe::corpus::transform::{apply, Transform};
use chatprobe::corpus::{Format, Manifest};
use rayon::prelude::*;

const N: usize = 500;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let files = make_files(&root.join("corpus"), &corpus);
    let total_mb: f64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len() as f64)
        .sum::<f64>()
        / 1e6;
    println!(
        "{} images ({:.1} MB, PNG and JPEG, 800x600), {} threads",
        files.len(),
        total_mb,
        rayon::current_num_threads()
    );

    let hash_rate = best_of(3, || {
        files
            .par_iter()
            .for_each_init(PerceptualHasher::new, |h, f| {
                let bytes = std::fs::read(f).unwrap();
                std::hint::black_box(md5_hex(&bytes));
                std::hint::black_box(h.hash_bytes(f, &bytes).unwrap());
            })
    });
    let decode_rate = best_of(3, || {
        files.par_iter().for_each(|f| {
            let bytes = std::fs::read(f).unwrap();
            std::hint::black_box(decode_image(f, &bytes).unwrap());
        })
    });
    let luma_rate = best_of(3, || {
        files.par_iter().for_each(|f| {
            let bytes = std::fs::read(f).unwrap();
            if f.extension().is_some_and(|e| e == "jpg") {
                std::hint::black_box(decode_jpeg_luma(f, &bytes).unwrap());
            } else {
                std::hint::black_box(decode_image(f, &bytes).unwrap());
            }
        })
    });
    let index_rate = best_of(3, || {
        let _ = std::fs::remove_file(corpus.join("index.csv"));
        let _ = std::fs::remove_file(corpus.join(".index-cache.csv"));
        chatprobe::corpus::index::build(&corpus, true).unwrap();
    });

    let list = tmp.path().join("files.txt");
    std::fs::write(
        &list,
        files
            .iter()
            .map(|f| f.to_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let script = root.join("benches/hash_python.py");
    let py1 = python_rate(&script, &list, 1);
    let pyn = python_rate(&script, &list, rayon::current_num_threads());

    println!();
    println!("{:<52} {:>10}", "", "images/s");
    println!(
        "{:<52} {:>10.1}",
        "decode only to RGB, all cores (floor)", decode_rate
    );
    println!(
        "{:<52} {:>10.1}",
        "decode only as chatprobe does (JPEG luma), all cores", luma_rate
    );
    println!(
        "{:<52} {:>10.1}",
        "chatprobe MD5 + pHash + dHash, all cores", hash_rate
    );
    println!(
        "{:<52} {:>10.1}",
        "chatprobe corpus index (adds SHA-256, CSV)", index_rate
    );
    match (py1, pyn) {
        (Some(p1), Some(pn)) => {
            println!(
                "{:<52} {:>10.1}",
                "Python hashlib + imagehash, 1 process", p1
            );
            println!(
                "{:<52} {:>10.1}",
                "Python hashlib + imagehash, pool of all cores", pn
            );
            println!();
            println!("chatprobe / Python (1 process):    {:.2}x", hash_rate / p1);
            println!("chatprobe / Python (pool):         {:.2}x", hash_rate / pn);
        }
        _ => {
            println!("Python baseline unavailable: `make deps-bench` installs imagehash and pillow")
        }
    }
    println!(
        "decode floor / chatprobe hashing:  {:.2}x  (goal <= 1.3)",
        decode_rate / hash_rate
    );
    println!(
        "luma-decode floor / chatprobe:     {:.2}x",
        luma_rate / hash_rate
    );
}

/// Images per second of the best of `n` passes of `f` over all files.
fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    N as f64 / best
}

fn python_rate(script: &Path, list: &Path, procs: usize) -> Option<f64> {
    let mut best: Option<f64> = None;
    for _ in 0..3 {
        let out = Command::new("python3")
            .arg(script)
            .arg(list)
            .arg(procs.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let s = String::from_utf8_lossy(&out.stdout);
        let rate: f64 = s.trim().strip_prefix("images_per_s ")?.parse().ok()?;
        best = Some(best.map_or(rate, |b: f64| b.max(rate)));
    }
    best
}

/// Write N fresh copies of the starter images into a corpus of their own.
fn make_files(src: &Path, dst: &Path) -> Vec<PathBuf> {
    let manifest = Manifest::load(src).unwrap();
    let images: Vec<_> = manifest
        .items
        .iter()
        .filter(|i| i.kind == chatprobe::corpus::ItemKind::Image)
        .collect();
    std::fs::create_dir_all(dst.join("images")).unwrap();
    let mut wtr = csv::Writer::from_path(dst.join("manifest.csv")).unwrap();
    let jobs: Vec<(usize, _)> = (0..N).map(|k| (k, images[k % images.len()])).collect();
    let made: Vec<(PathBuf, String, chatprobe::corpus::Item)> = jobs
        .par_iter()
        .map(|(k, item)| {
            let p = src.join(&item.path);
            let bytes = std::fs::read(&p).unwrap();
            let f = Format::from_path(&p).unwrap();
            let (out, of) = apply(Transform::Fresh, &p, &bytes, f, *k as u64).unwrap();
            let rel = format!("images/b{k:04}.{}", of.extension());
            std::fs::write(dst.join(&rel), out).unwrap();
            let mut it = (*item).clone();
            it.id = format!("b{k:04}");
            it.path = rel.clone();
            (dst.join(&rel), rel, it)
        })
        .collect();
    for (_, _, it) in &made {
        wtr.serialize(it).unwrap();
    }
    wtr.flush().unwrap();
    made.into_iter().map(|(p, _, _)| p).collect()
}
