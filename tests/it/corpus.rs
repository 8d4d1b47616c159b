//! The corpus commands through the real binary: the starter corpus, index,
//! variants, import, and bad input (exit 2, file named, nothing half-written).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chatprobe::corpus::text;
use chatprobe::corpus::Format;

use crate::util::{chatprobe, chatprobe_ok, csv_maps, read_csv, root, s, starter_corpus};

const INDEX_COLUMNS: [&str; 13] = [
    "variant_id",
    "item_id",
    "path",
    "kind",
    "transform",
    "md5",
    "sha256",
    "bytes",
    "width",
    "height",
    "phash",
    "dhash",
    "phash_distance",
];

#[test]
fn starter_corpus_has_what_the_experiments_need() {
    let items = csv_maps(&root().join("corpus/manifest.csv"));
    let count = |kind: &str, label: &str| {
        items
            .iter()
            .filter(|r| r["kind"] == kind && r["label"] == label)
            .count()
    };
    assert!(count("image", "sensitive") >= 12 && count("image", "benign") >= 12);
    assert!(count("document", "sensitive") >= 6 && count("document", "benign") >= 6);
    for ext in ["txt", "docx", "pdf"] {
        for label in ["sensitive", "benign"] {
            assert!(
                items
                    .iter()
                    .any(|r| r["label"] == label && r["path"].ends_with(ext)),
                "{label} {ext}"
            );
        }
    }
    assert!(
        items.iter().all(|r| !r["source"].is_empty()),
        "provenance of every item"
    );

    let keywords = csv_maps(&root().join("corpus/keywords.csv"));
    assert!(keywords.len() >= 40);
    let sensitive: Vec<Vec<String>> = keywords
        .iter()
        .filter(|k| k["label"] == "sensitive")
        .map(|k| k["keyword"].split('+').map(String::from).collect())
        .collect();
    assert!(keywords.iter().any(|k| k["label"] == "benign"));
    // Sensitive documents hold a sensitive keyword; benign ones hold none.
    for r in items.iter().filter(|r| r["kind"] == "document") {
        let p = root().join("corpus").join(&r["path"]);
        let bytes = std::fs::read(&p).unwrap();
        let t = text::squeeze(&text::extract(&p, &bytes, Format::from_path(&p).unwrap()).unwrap());
        let hit = sensitive
            .iter()
            .any(|parts| parts.iter().all(|k| t.contains(k.as_str())));
        assert_eq!(hit, r["label"] == "sensitive", "{}: {t}", r["id"]);
    }
}

#[test]
fn index_hashes_every_item_and_is_incremental() {
    let (_tmp, c) = starter_corpus();
    let r = chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    assert!(
        r.stdout.contains("36 rows (36 hashed, 0 unchanged)"),
        "{}",
        r.stdout
    );
    let (header, rows) = read_csv(&c.join("index.csv"));
    assert_eq!(&header[..13], &INDEX_COLUMNS);
    assert_eq!(rows.len(), 36);
    let maps = csv_maps(&c.join("index.csv"));
    for m in &maps {
        assert_eq!(m["variant_id"], m["item_id"]);
        assert_eq!(m["md5"].len(), 32);
        assert_eq!(m["sha256"].len(), 64);
        let bytes = std::fs::read(c.join(&m["path"])).unwrap();
        assert_eq!(m["bytes"], bytes.len().to_string());
        assert_eq!(m["md5"], chatprobe::corpus::hash::md5_hex(&bytes));
        if m["kind"] == "image" {
            assert_eq!(m["phash"].len(), 16);
            assert_eq!(m["dhash"].len(), 16);
            assert_eq!(m["phash_distance"], "0");
            assert!(m["width"] == "800" || m["width"] == "600");
        } else {
            assert_eq!(m["phash"], "");
            assert_eq!(m["width"], "");
        }
    }
    let first = std::fs::read(c.join("index.csv")).unwrap();

    let r = chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    assert!(
        r.stdout.contains("(0 hashed, 36 unchanged)"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(c.join("index.csv")).unwrap(), first);

    // Change one file: exactly that one is hashed again.
    let txt = c.join("documents/doc-b01.txt");
    let mut t = std::fs::read_to_string(&txt).unwrap();
    t.push_str("\n补充：周日多云。");
    std::fs::write(&txt, t).unwrap();
    let r = chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    assert!(
        r.stdout.contains("(1 hashed, 35 unchanged)"),
        "{}",
        r.stdout
    );

    // Without the stat cache (a fresh clone), content hashes decide.
    std::fs::remove_file(c.join(".index-cache.csv")).unwrap();
    let r = chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    assert!(
        r.stdout.contains("(0 hashed, 36 unchanged)"),
        "{}",
        r.stdout
    );
}

#[test]
fn index_writes_each_items_content_features() {
    let (_tmp, c) = starter_corpus();
    chatprobe_ok(&["corpus", "index", "--quiet", "--corpus", s(&c)]);
    let (header, _) = read_csv(&c.join("features.csv"));
    assert_eq!(header, chatprobe::corpus::features::FEATURE_COLUMNS);
    let features: HashMap<String, HashMap<String, String>> = csv_maps(&c.join("features.csv"))
        .into_iter()
        .map(|r| (r["item_id"].clone(), r))
        .collect();
    let manifest = csv_maps(&c.join("manifest.csv"));
    assert_eq!(features.len(), manifest.len(), "one row an item");
    let index = csv_maps(&c.join("index.csv"));
    for m in &manifest {
        let f = &features[&m["id"]];
        for k in ["kind", "topic", "label", "lang", "source"] {
            assert_eq!(f[k], m[k], "{}: {k}", m["id"]);
        }
        let ix = index.iter().find(|r| r["item_id"] == m["id"]).unwrap();
        assert_eq!((&f["bytes"], &f["width"]), (&ix["bytes"], &ix["width"]));
        // Every sensitive item of the starter corpus carries a keyword of
        // the list in its text (a document's, or an image's `text:` note);
        // no benign one does.
        assert_eq!(f["has_text"], "TRUE", "{}", m["id"]);
        let n: u64 = f["sensitive_keywords"].parse().unwrap();
        assert_eq!(n > 0, m["label"] == "sensitive", "{}: {f:?}", m["id"]);
    }
    // Counts, against the text itself: a plain text, a DOCX and a PDF.
    for (id, keyword) in [
        ("doc-s01", "天安门"),
        ("doc-s02", "刘晓波"),
        ("doc-s03", "法轮功"),
    ] {
        let f = &features[id];
        let m = manifest.iter().find(|m| m["id"] == id).unwrap();
        let p = c.join(&m["path"]);
        let bytes = std::fs::read(&p).unwrap();
        let t = text::squeeze(&text::extract(&p, &bytes, Format::from_path(&p).unwrap()).unwrap());
        let n = t.matches(keyword).count();
        assert!(n > 0, "{id}: {t}");
        assert!(
            f["keywords"]
                .split(';')
                .any(|k| k == format!("{keyword}:{n}")),
            "{id}: {f:?}"
        );
        assert_eq!(f["text_chars"], t.chars().count().to_string());
        assert_eq!(f["format"], p.extension().unwrap().to_str().unwrap());
    }
    // A combination counts when all its parts are there: 六四+烛光 in the
    // June 4th vigil image's text.
    assert!(
        features["img-s01"]["keywords"].contains("六四+烛光:1"),
        "{:?}",
        features["img-s01"]
    );
}

#[test]
fn variants_are_written_with_lineage_and_indexed() {
    let (_tmp, c) = starter_corpus();
    let r = chatprobe_ok(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "mirror,crop:0.1",
        "--transform",
        "fresh",
        "--item",
        "img-s01",
        "--item",
        "doc-s02",
        "--seed",
        "7",
    ]);
    // doc-s02 takes only `fresh`: its image transforms are skipped and counted.
    assert!(r.stderr.contains("4 variants written"), "{}", r.stderr);
    assert!(
        r.stderr.contains("2 item/transform pairs did not fit"),
        "{}",
        r.stderr
    );
    let lineage = csv_maps(&c.join("variants/lineage.csv"));
    let ids: HashSet<&str> = lineage.iter().map(|l| l["variant_id"].as_str()).collect();
    assert!(ids.contains("img-s01--mirror"));
    assert!(ids.contains("img-s01--crop_0.1"));
    assert!(ids.contains("img-s01--fresh-s7"));
    assert!(ids.contains("doc-s02--fresh-s7"));
    for l in &lineage {
        assert!(c.join(&l["path"]).is_file(), "{}", l["path"]);
    }
    let index = csv_maps(&c.join("index.csv"));
    assert_eq!(index.len(), 36 + lineage.len());
    let row = |id: &str| {
        index
            .iter()
            .find(|r| r["variant_id"] == id)
            .unwrap()
            .clone()
    };
    let mirror = row("img-s01--mirror");
    assert_eq!(mirror["item_id"], "img-s01");
    assert_eq!(mirror["transform"], "mirror");
    assert!(mirror["phash_distance"].parse::<u32>().unwrap() > 12);
    assert_eq!(row("img-s01--crop_0.1")["width"], "720");
    let fresh = row("img-s01--fresh-s7");
    assert_eq!(fresh["seed"], "7");
    assert!(fresh["phash_distance"].parse::<u32>().unwrap() <= 2);
    assert_ne!(fresh["md5"], row("img-s01")["md5"]);
    assert_eq!(row("doc-s02--fresh-s7")["transform"], "fresh");

    // Index order: each item followed by its variants.
    let pos = |id: &str| index.iter().position(|r| r["variant_id"] == id).unwrap();
    assert_eq!(pos("img-s01--crop_0.1"), pos("img-s01") + 1);

    // Re-running is idempotent: same files, no duplicate lineage rows.
    let before = std::fs::read(c.join("variants/lineage.csv")).unwrap();
    chatprobe_ok(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "mirror,crop:0.1,fresh",
        "--item",
        "img-s01",
        "--item",
        "doc-s02",
        "--seed",
        "7",
    ]);
    assert_eq!(
        std::fs::read(c.join("variants/lineage.csv")).unwrap(),
        before
    );
}

#[test]
fn variants_without_item_take_every_item_of_a_fitting_kind() {
    let (_tmp, c) = starter_corpus();
    let r = chatprobe_ok(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "tile:2,fresh",
    ]);
    assert!(
        r.stderr.contains("12 item/transform pairs did not fit"),
        "{}",
        r.stderr
    );
    let lineage = csv_maps(&c.join("variants/lineage.csv"));
    assert_eq!(
        lineage
            .iter()
            .filter(|l| l["transform"] == "tile:2")
            .count(),
        24
    );
    assert_eq!(
        lineage.iter().filter(|l| l["transform"] == "fresh").count(),
        36
    );
}

#[test]
fn an_image_transform_on_a_named_document_is_bad_input() {
    let (_tmp, c) = starter_corpus();
    let r = chatprobe(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "mirror",
        "--item",
        "doc-s02",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("doc-s02"), "{}", r.stderr);
    assert!(!c.join("variants").exists(), "nothing written");
}

#[test]
fn unknown_transform_or_item_exits_2_naming_it() {
    let (_tmp, c) = starter_corpus();
    let r = chatprobe(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "mirror,sharpen:3",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("sharpen:3"), "{}", r.stderr);
    assert!(!c.join("variants").exists());
    let r = chatprobe(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "mirror",
        "--item",
        "img-nope",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("img-nope"), "{}", r.stderr);
}

fn corrupt_and_check(c: &Path, rel: &str, bytes: &[u8]) {
    let before = std::fs::read(c.join("index.csv")).unwrap();
    let saved = std::fs::read(c.join(rel)).unwrap();
    std::fs::write(c.join(rel), bytes).unwrap();
    let r = chatprobe(&["corpus", "index", "--corpus", s(c)]);
    assert_eq!(r.code, 2, "{rel}: {}", r.stderr);
    assert!(r.stderr.contains(rel), "names the file: {}", r.stderr);
    assert_eq!(
        std::fs::read(c.join("index.csv")).unwrap(),
        before,
        "index intact"
    );
    // Variants of a corrupt item fail the same way, writing nothing.
    let id = Path::new(rel).file_stem().unwrap().to_str().unwrap();
    let r = chatprobe(&[
        "corpus",
        "variants",
        "--corpus",
        s(c),
        "-t",
        "mirror",
        "--item",
        id,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(rel), "{}", r.stderr);
    std::fs::write(c.join(rel), saved).unwrap();
}

#[test]
fn corrupt_or_truncated_images_exit_2_and_leave_the_index_intact() {
    let (_tmp, c) = starter_corpus();
    chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    let png = std::fs::read(c.join("images/img-s02.png")).unwrap();
    let jpg = std::fs::read(c.join("images/img-s01.jpg")).unwrap();
    corrupt_and_check(&c, "images/img-s02.png", &png[..png.len() / 2]);
    corrupt_and_check(&c, "images/img-s01.jpg", &jpg[..jpg.len() / 2]);
    corrupt_and_check(&c, "images/img-s01.jpg", b"this is not an image at all");
    let mut flipped = png.clone();
    for b in &mut flipped[200..400] {
        *b ^= 0x5a;
    }
    corrupt_and_check(&c, "images/img-s02.png", &flipped);
    assert!(!c.join("variants").exists());
}

#[test]
fn a_manifest_row_pointing_at_a_missing_file_exits_2() {
    let (_tmp, c) = starter_corpus();
    chatprobe_ok(&["corpus", "index", "--corpus", s(&c)]);
    let before = std::fs::read(c.join("index.csv")).unwrap();
    std::fs::remove_file(c.join("images/img-b07.jpg")).unwrap();
    let r = chatprobe(&["corpus", "index", "--corpus", s(&c)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("img-b07.jpg"), "{}", r.stderr);
    assert!(
        r.stderr.contains("manifest.csv"),
        "says where it is listed: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(c.join("index.csv")).unwrap(), before);
}

#[test]
fn a_malformed_manifest_names_line_and_column() {
    let (_tmp, c) = starter_corpus();
    let m = std::fs::read_to_string(c.join("manifest.csv")).unwrap();
    std::fs::write(
        c.join("manifest.csv"),
        m.replacen(
            ",image,images/img-s03.jpg,sensitive,",
            ",image,images/img-s03.jpg,secret,",
            1,
        ),
    )
    .unwrap();
    let r = chatprobe(&["corpus", "index", "--corpus", s(&c)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("manifest.csv:4 [label]"), "{}", r.stderr);
    assert!(!c.join("index.csv").exists());
    let r = chatprobe(&["corpus", "index", "--corpus", "/nonexistent/corpus"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("/nonexistent/corpus/manifest.csv"),
        "{}",
        r.stderr
    );
}

/// JPEGs the tests never saw: drawn here, saved by the image crate.
fn make_jpegs(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for k in 0..5u32 {
        let img = image::RgbImage::from_fn(640 + k * 10, 480, |x, y| {
            image::Rgb([
                (x * (k + 1) % 256) as u8,
                (y * 3 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let name = if k < 3 {
            format!("photo {k}.JPG")
        } else {
            format!("sub/pic-{k}.jpeg")
        };
        img.save_with_format(dir.join(name), image::ImageFormat::Jpeg)
            .unwrap();
    }
}

#[test]
fn import_adds_new_files_skips_duplicates_and_feeds_variants() {
    let (tmp, c) = starter_corpus();
    let src = tmp.path().join("incoming");
    make_jpegs(&src);
    std::fs::copy(src.join("photo 0.JPG"), src.join("sub/copy-of-photo-0.jpg")).unwrap();
    std::fs::copy(c.join("images/img-s01.jpg"), src.join("already-there.jpg")).unwrap();
    std::fs::write(src.join("readme.md"), "not a probe").unwrap();
    let r = chatprobe_ok(&[
        "corpus",
        "import",
        s(&src),
        "--corpus",
        s(&c),
        "--label",
        "sensitive",
        "--topic",
        "june 4",
        "--source",
        "test: synthetic JPEGs",
    ]);
    assert!(
        r.stderr
            .contains("5 added, 2 duplicates skipped, 1 unsupported"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("same content as img-s01"), "{}", r.stdout);
    assert!(r.stdout.contains("readme.md"), "{}", r.stdout);
    let items = csv_maps(&c.join("manifest.csv"));
    assert_eq!(items.len(), 41);
    let imported: Vec<_> = items.iter().filter(|r| r["topic"] == "june 4").collect();
    assert_eq!(imported.len(), 5);
    for r in &imported {
        assert!(r["id"].starts_with("img-june-4-"), "{}", r["id"]);
        assert_eq!(r["source"], "test: synthetic JPEGs");
        assert!(r["path"].starts_with("imported/june-4/"), "{}", r["path"]);
        assert!(c.join(&r["path"]).is_file());
    }
    let index = csv_maps(&c.join("index.csv"));
    assert_eq!(index.len(), 41);
    let id = imported[0]["id"].clone();
    chatprobe_ok(&[
        "corpus",
        "variants",
        "--corpus",
        s(&c),
        "-t",
        "fresh,mirror",
        "--item",
        &id,
    ]);
    let index = csv_maps(&c.join("index.csv"));
    assert_eq!(index.len(), 43);
    assert!(index
        .iter()
        .any(|r| r["variant_id"] == format!("{id}--fresh-s1")));

    // Importing again adds nothing.
    let r = chatprobe_ok(&[
        "corpus",
        "import",
        s(&src),
        "--corpus",
        s(&c),
        "--label",
        "sensitive",
        "--topic",
        "june 4",
        "--source",
        "again",
    ]);
    assert!(
        r.stderr.contains("0 added, 7 duplicates skipped"),
        "{}",
        r.stderr
    );
}

#[test]
fn import_of_a_corrupt_file_writes_nothing() {
    let (tmp, c) = starter_corpus();
    let src = tmp.path().join("incoming");
    make_jpegs(&src);
    let good = std::fs::read(src.join("photo 1.JPG")).unwrap();
    std::fs::write(src.join("photo 1.JPG"), &good[..good.len() / 3]).unwrap();
    let before = std::fs::read(c.join("manifest.csv")).unwrap();
    let r = chatprobe(&[
        "corpus",
        "import",
        s(&src),
        "--corpus",
        s(&c),
        "--label",
        "benign",
        "--topic",
        "t",
        "--source",
        "s",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("photo 1.JPG"), "{}", r.stderr);
    assert_eq!(std::fs::read(c.join("manifest.csv")).unwrap(), before);
    assert!(!c.join("imported").exists());
}

/// `corpus import` into a folder that is not a corpus yet makes one: the
/// folder, its manifest with the imported files, and the index. A source
/// with nothing chatprobe can send makes nothing (exit 2).
#[test]
fn import_into_a_new_folder_makes_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("incoming");
    make_jpegs(&src);
    let c = tmp.path().join("my-corpus");
    let args = |from: &Path| {
        vec![
            "corpus".to_string(),
            "import".into(),
            s(from).into(),
            "--corpus".into(),
            s(&c).into(),
            "--label".into(),
            "sensitive".into(),
            "--topic".into(),
            "june 4".into(),
            "--source".into(),
            "test".into(),
        ]
    };
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("readme.md"), "not a probe").unwrap();
    let a = args(&empty);
    let r = chatprobe(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no corpus was made"), "{}", r.stderr);
    assert!(!c.exists(), "a corpus was made from nothing");
    let a = args(&src);
    let r = chatprobe_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(r.stderr.contains("a new corpus"), "{}", r.stderr);
    assert!(r.stderr.contains("5 added"), "{}", r.stderr);
    let items = csv_maps(&c.join("manifest.csv"));
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i["label"] == "sensitive"));
    assert_eq!(csv_maps(&c.join("index.csv")).len(), 5);
}
