//! Transforms and fresh copies on real corpus files: each does to the pixels
//! and bytes what it says, and the hashes move (or not) as the published
//! findings need.

use std::path::{Path, PathBuf};

use chatprobe::corpus::fresh;
use chatprobe::corpus::hash::{decode_image, md5_hex, PerceptualHasher};
use chatprobe::corpus::text;
use chatprobe::corpus::transform::{self, apply, reencode_jpeg, Transform};
use chatprobe::corpus::Format;
use image::{DynamicImage, GenericImageView};

use crate::util::root;

fn item(rel: &str) -> (PathBuf, Vec<u8>, Format) {
    let p = root().join("corpus").join(rel);
    let bytes = std::fs::read(&p).unwrap();
    let f = Format::from_path(&p).unwrap();
    (p, bytes, f)
}

fn run(spec: &str, rel: &str, seed: u64) -> (DynamicImage, DynamicImage, Vec<u8>, Format) {
    let (p, bytes, f) = item(rel);
    let t: Transform = spec.parse().unwrap();
    let (out, of) = apply(t, &p, &bytes, f, seed).unwrap();
    let orig = decode_image(&p, &bytes).unwrap();
    let new = decode_image(Path::new("out"), &out).unwrap();
    (orig, new, out, of)
}

const PNG: &str = "images/img-s02.png"; // 800×600
const JPG: &str = "images/img-s01.jpg"; // 800×600

#[test]
fn geometric_transforms_move_pixels_exactly() {
    let (o, m, _, f) = run("mirror", PNG, 1);
    assert_eq!(f, Format::Png);
    assert_eq!(m.dimensions(), o.dimensions());
    let (w, h) = o.dimensions();
    for &(x, y) in &[(0, 0), (10, 300), (799, 599), (400, 123)] {
        assert_eq!(m.get_pixel(x, y), o.get_pixel(w - 1 - x, y));
    }
    let (o, fl, _, _) = run("flip", PNG, 1);
    for &(x, y) in &[(0, 0), (10, 300), (799, 599)] {
        assert_eq!(fl.get_pixel(x, y), o.get_pixel(x, h - 1 - y));
    }
    let (o, r, _, _) = run("rotate:90", PNG, 1);
    assert_eq!(r.dimensions(), (h, w));
    assert_eq!(r.get_pixel(h - 1, 0), o.get_pixel(0, 0));
    let (o, r, _, _) = run("rotate:10", PNG, 1);
    assert_eq!(r.dimensions(), o.dimensions());
    assert_ne!(r.to_rgb8(), o.to_rgb8());
    assert_eq!(
        r.get_pixel(0, 0).0[..3],
        [255, 255, 255],
        "corner is white canvas"
    );
    let (o, c, _, _) = run("crop:0.1", PNG, 1);
    assert_eq!(c.dimensions(), (720, 540));
    assert_eq!(c.get_pixel(0, 0), o.get_pixel(40, 30));
}

#[test]
fn borders_padding_and_tiles_change_the_canvas() {
    let (o, b, _, _) = run("border:8", PNG, 1);
    assert_eq!(b.dimensions(), (816, 616));
    assert_eq!(b.get_pixel(3, 3).0[..3], [0, 0, 0]);
    assert_eq!(b.get_pixel(8, 8).0[..3], o.get_pixel(0, 0).0[..3]);
    let (o, p, _, _) = run("pad:0.2", PNG, 1);
    assert_eq!(p.dimensions(), (960, 600), "white space on the long side");
    assert_eq!(p.get_pixel(0, 300).0[..3], [255, 255, 255]);
    assert_eq!(p.get_pixel(959, 300).0[..3], [255, 255, 255]);
    assert_eq!(p.get_pixel(80, 0).0[..3], o.get_pixel(0, 0).0[..3]);
    // Portrait: pad goes on the height.
    let (_, pp, _, _) = run("pad:0.5", "images/img-s04.png", 1);
    assert_eq!(pp.dimensions(), (600, 1200));
    let (o, t, _, _) = run("tile:3", PNG, 1);
    assert_eq!(t.dimensions(), (2400, 600));
    for k in 0..3 {
        assert_eq!(
            t.get_pixel(k * 800 + 17, 250).0[..3],
            o.get_pixel(17, 250).0[..3]
        );
    }
}

#[test]
fn resizes_change_exactly_the_dimensions_asked() {
    assert_eq!(run("scale:0.5", PNG, 1).1.dimensions(), (400, 300));
    assert_eq!(run("squash-x:0.5", PNG, 1).1.dimensions(), (400, 600));
    assert_eq!(run("squash-y:0.25", PNG, 1).1.dimensions(), (800, 150));
}

#[test]
fn grey_uses_luminosity_weights_and_otsu_is_black_and_white() {
    let (o, g, _, _) = run("grey", PNG, 1);
    let g = g.to_luma8();
    let o = o.to_rgb8();
    for &(x, y) in &[(5, 5), (400, 100), (700, 500), (123, 456)] {
        let p = o.get_pixel(x, y).0;
        let want = (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round();
        assert_eq!(g.get_pixel(x, y).0[0] as f32, want, "at {x},{y}");
    }
    let (_, b, _, _) = run("otsu", JPG, 1);
    let b = b.to_luma8();
    assert!(b.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    assert!(b.pixels().any(|p| p.0[0] == 0) && b.pixels().any(|p| p.0[0] == 255));
}

fn variance_of_neighbour_diffs(img: &DynamicImage) -> f64 {
    let g = img.to_luma8();
    let mut s = 0f64;
    for y in 0..g.height() {
        for x in 1..g.width() {
            let d = g.get_pixel(x, y).0[0] as f64 - g.get_pixel(x - 1, y).0[0] as f64;
            s += d * d;
        }
    }
    s
}

#[test]
fn blur_smooths_brightness_lifts_noise_is_bounded_and_seeded() {
    let (o, b, _, _) = run("blur:3", PNG, 1);
    assert_eq!(b.dimensions(), o.dimensions());
    assert!(variance_of_neighbour_diffs(&b) < variance_of_neighbour_diffs(&o) / 2.0);
    let (o, br, _, _) = run("brightness:30", PNG, 1);
    let mean = |i: &DynamicImage| i.to_luma8().pixels().map(|p| p.0[0] as f64).sum::<f64>();
    assert!(mean(&br) > mean(&o));
    let (o, n1, bytes1, _) = run("noise:6", PNG, 1);
    let (_, _, bytes1b, _) = run("noise:6", PNG, 1);
    let (_, _, bytes2, _) = run("noise:6", PNG, 2);
    assert_eq!(bytes1, bytes1b, "same seed, same bytes");
    assert_ne!(bytes1, bytes2, "another seed, another file");
    let (o, n1) = (o.to_rgb8(), n1.to_rgb8());
    assert!(o
        .pixels()
        .zip(n1.pixels())
        .all(|(a, b)| a
            .0
            .iter()
            .zip(b.0)
            .all(|(x, y)| (*x as i16 - y as i16).abs() <= 6)));
    assert_ne!(o, n1);
}

#[test]
fn jpeg_quality_reencodes_as_jpeg() {
    let (_, j, bytes, f) = run("jpeg:40", PNG, 1);
    assert_eq!(f, Format::Jpeg);
    assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    assert_eq!(j.dimensions(), (800, 600));
    let (_, _, hi, _) = run("jpeg:95", PNG, 1);
    assert!(bytes.len() < hi.len(), "quality 40 is smaller than 95");
}

#[test]
fn every_transform_is_deterministic() {
    for spec in transform::TRANSFORM_NAMES.split(", ") {
        let spec = spec
            .replace("DEG", "15")
            .replace("FRAC", "0.1")
            .replace("SIGMA", "1.5")
            .replace(":PX", ":4")
            .replace(":F", ":0.7")
            .replace(":Q", ":50")
            .replace(":D", ":-20")
            .replace(":A", ":3")
            .replace(":N", ":2");
        let a = run(&spec, JPG, 9).2;
        let b = run(&spec, JPG, 9).2;
        assert_eq!(md5_hex(&a), md5_hex(&b), "{spec}");
    }
}

#[test]
fn mirror_and_tiles_move_the_phash_far_while_blur_and_squash_do_not() {
    let h = PerceptualHasher::new();
    for rel in [PNG, JPG, "images/img-b05.jpg", "images/img-s04.png"] {
        let dist = |spec: &str| {
            let (o, n, _, _) = run(spec, rel, 1);
            h.hash(&o).phash.distance(h.hash(&n).phash)
        };
        assert!(dist("mirror") > 12, "{rel}: mirror {}", dist("mirror"));
        assert!(dist("tile:3") > 12, "{rel}: tile:3 {}", dist("tile:3"));
        assert!(dist("squash-x:0.5") <= 6, "{rel}");
        assert!(dist("blur:2") <= 6, "{rel}");
    }
}

#[test]
fn fresh_images_get_new_md5s_that_survive_reencoding_and_keep_the_phash() {
    let h = PerceptualHasher::new();
    for rel in [PNG, JPG, "images/img-b02.png", "images/img-b11.jpg"] {
        let (p, bytes, f) = item(rel);
        let orig = decode_image(&p, &bytes).unwrap();
        let (a, fa) = apply(Transform::Fresh, &p, &bytes, f, 1).unwrap();
        let (b, _) = apply(Transform::Fresh, &p, &bytes, f, 2).unwrap();
        assert_eq!(fa, f, "fresh keeps the format");
        let md5s = [md5_hex(&bytes), md5_hex(&a), md5_hex(&b)];
        assert_ne!(md5s[0], md5s[1]);
        assert_ne!(md5s[0], md5s[2]);
        assert_ne!(md5s[1], md5s[2]);
        for q in [50u8, 75, 85] {
            let ro = md5_hex(&reencode_jpeg(&p, &bytes, q).unwrap());
            let ra = md5_hex(&reencode_jpeg(&p, &a, q).unwrap());
            let rb = md5_hex(&reencode_jpeg(&p, &b, q).unwrap());
            assert!(
                ro != ra && ro != rb && ra != rb,
                "{rel} at q{q}: re-encoded copies collide"
            );
        }
        let ho = h.hash(&orig).phash;
        for copy in [&a, &b] {
            let d = ho.distance(h.hash(&decode_image(&p, copy).unwrap()).phash);
            assert!(d <= 2, "{rel}: fresh moved the pHash by {d} bits");
        }
    }
}

#[test]
fn fresh_meta_changes_only_metadata_so_reencoding_collides() {
    for rel in [PNG, JPG] {
        let (p, bytes, f) = item(rel);
        let (a, _) = apply(Transform::FreshMeta, &p, &bytes, f, 1).unwrap();
        let (b, _) = apply(Transform::FreshMeta, &p, &bytes, f, 2).unwrap();
        assert_ne!(md5_hex(&a), md5_hex(&b));
        assert_ne!(md5_hex(&a), md5_hex(&bytes));
        let (da, db) = (
            decode_image(&p, &a).unwrap().to_rgb8(),
            decode_image(&p, &b).unwrap().to_rgb8(),
        );
        assert_eq!(da, decode_image(&p, &bytes).unwrap().to_rgb8());
        assert_eq!(da, db);
        assert_eq!(
            md5_hex(&reencode_jpeg(&p, &a, 75).unwrap()),
            md5_hex(&reencode_jpeg(&p, &b, 75).unwrap())
        );
    }
}

#[test]
fn fresh_documents_change_bytes_but_not_text() {
    for rel in [
        "documents/doc-s01.txt",
        "documents/doc-s02.docx",
        "documents/doc-s03.pdf",
        "documents/doc-b06.pdf",
    ] {
        let (p, bytes, f) = item(rel);
        let orig = text::extract(&p, &bytes, f).unwrap();
        assert!(orig.chars().count() > 50, "{rel}: extracted {orig:?}");
        let (a, _) = apply(Transform::Fresh, &p, &bytes, f, 1).unwrap();
        let (b, _) = apply(Transform::Fresh, &p, &bytes, f, 2).unwrap();
        assert!(
            md5_hex(&a) != md5_hex(&bytes) && md5_hex(&a) != md5_hex(&b),
            "{rel}"
        );
        for copy in [&a, &b] {
            assert_eq!(text::extract(&p, copy, f).unwrap(), orig, "{rel}");
        }
        // A fresh copy of a fresh copy is fresh again.
        let (c, _) = apply(Transform::Fresh, &p, &a, f, 3).unwrap();
        assert_ne!(md5_hex(&c), md5_hex(&a));
        assert_eq!(text::extract(&p, &c, f).unwrap(), orig);
    }
}

#[test]
fn docx_extraction_decodes_entities_and_tabs() {
    let docx = fresh::minimal_docx("A & B <c>", &["x\ty"]);
    let t = text::extract(Path::new("t.docx"), &docx, Format::Docx).unwrap();
    assert_eq!(t, "A & B <c>\nx\ty");
}

#[test]
fn bad_specs_are_named() {
    for bad in [
        "sharpen", "crop", "crop:1.5", "jpeg:0", "mirror:2", "tile:x", "blur:-1",
    ] {
        let err = bad.parse::<Transform>().unwrap_err().to_string();
        assert!(err.contains(bad), "{err}");
    }
    assert_eq!(
        "crop:0.1".parse::<Transform>().unwrap(),
        Transform::Crop(0.1)
    );
    let ts = transform::parse_specs(&["mirror,crop:0.1", "mirror", "tile:3"]).unwrap();
    assert_eq!(ts.len(), 3);
    for t in ts {
        assert_eq!(t.to_string().parse::<Transform>().unwrap(), t, "round trip");
    }
}

#[test]
fn the_fast_jpeg_path_hashes_like_a_full_decode() {
    let h = PerceptualHasher::new();
    for rel in [
        "images/img-s01.jpg",
        "images/img-b05.jpg",
        "images/img-s11.jpg",
    ] {
        let (p, bytes, _) = item(rel);
        let fast = h.hash_bytes(&p, &bytes).unwrap();
        let full = h.hash(&decode_image(&p, &bytes).unwrap());
        assert_eq!((fast.width, fast.height), (full.width, full.height));
        assert!(fast.phash.distance(full.phash) <= 2, "{rel}");
        assert!(fast.dhash.distance(full.dhash) <= 4, "{rel}");
        // The same picture as PNG hashes alike too.
        let png =
            transform::encode(&decode_image(&p, &bytes).unwrap(), Format::Png, 0, &p).unwrap();
        let as_png = h.hash_bytes(Path::new("x.png"), &png).unwrap();
        assert!(as_png.phash.distance(fast.phash) <= 2, "{rel}");
    }
}
