//! Fresh copies: the same content under a new MD5, so that an experiment can
//! send something the platform has never seen.
//!
//! - Images, `fresh`: a few seeded 8×8 blocks (aligned to the JPEG grid) are
//!   shifted by ±3 grey levels. That is invisible, moves the perceptual hash by
//!   0–2 bits, and survives a platform's JPEG re-encoding (a block's DC
//!   coefficient moves by several quantisation steps even at quality 50), so
//!   the *re-encoded* file also gets a new MD5 — which is what a platform that
//!   re-encodes keys its index on.
//! - Images, `fresh-meta`: only metadata changes (a PNG `tEXt` chunk, a JPEG
//!   `COM` segment); pixels are untouched, so a re-encoding platform sees the
//!   same image twice.
//! - Documents: txt gets a seeded pattern of trailing blanks, docx a zip
//!   comment, pdf a comment after `%%EOF`; the extracted text is unchanged.
//!
//! The byte surgery on PNG chunks and JPEG segments is written here by hand:
//! the `png` and `jpeg` encoders of the `image` crate cannot add a chunk to an
//! existing file without decoding and re-encoding it, which would change the
//! pixels of a JPEG.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use image::DynamicImage;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::manifest::Format;
use super::CorpusError;
use crate::error::InputError;

/// How many 8×8 blocks a `fresh` image copy changes.
pub const FRESH_BLOCKS: usize = 6;
/// By how many grey levels each changed block moves.
pub const FRESH_DELTA: i16 = 3;

/// A seeded nonce, 32 hex digits.
pub fn nonce(seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6368_6174_7072_6f62);
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Shift a few seeded, JPEG-grid-aligned 8×8 blocks by ±[`FRESH_DELTA`].
/// Each block moves towards mid-grey, so it is never clipped away.
pub fn fresh_pixels(img: &DynamicImage, seed: u64) -> DynamicImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let has_alpha = img.color().has_alpha();
    let mut rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let (bw, bh) = ((w / 8).max(1), (h / 8).max(1));
    for _ in 0..FRESH_BLOCKS {
        let bx = rng.random_range(0..bw) * 8;
        let by = rng.random_range(0..bh) * 8;
        let (x1, y1) = ((bx + 8).min(w), (by + 8).min(h));
        let mut sum = 0u64;
        let mut n = 0u64;
        for y in by..y1 {
            for x in bx..x1 {
                let p = rgba.get_pixel(x, y).0;
                sum += p[0] as u64 + p[1] as u64 + p[2] as u64;
                n += 3;
            }
        }
        let mean = sum / n.max(1);
        let delta = if mean > 127 {
            -FRESH_DELTA
        } else {
            FRESH_DELTA
        };
        for y in by..y1 {
            for x in bx..x1 {
                let p = rgba.get_pixel_mut(x, y);
                for c in 0..3 {
                    p.0[c] = (p.0[c] as i16 + delta).clamp(0, 255) as u8;
                }
            }
        }
    }
    if has_alpha {
        DynamicImage::ImageRgba8(rgba)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
    }
}

/// A copy of an image file that differs only in metadata.
pub fn fresh_meta_image(bytes: &[u8], format: Format, seed: u64) -> Result<Vec<u8>, CorpusError> {
    let text = format!("chatprobe-fresh {}", nonce(seed));
    match format {
        Format::Png => png_with_text(bytes, "Comment", &text),
        Format::Jpeg => jpeg_with_comment(bytes, &text),
        _ => unreachable!("fresh_meta_image called on a document"),
    }
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Insert a `tEXt` chunk right after IHDR.
fn png_with_text(bytes: &[u8], keyword: &str, text: &str) -> Result<Vec<u8>, CorpusError> {
    if bytes.len() < 33 || bytes[..8] != PNG_SIGNATURE || &bytes[12..16] != b"IHDR" {
        return Err(InputError::new("<png>", "not a PNG file with an IHDR chunk").into());
    }
    let mut data = Vec::with_capacity(keyword.len() + 1 + text.len());
    data.extend_from_slice(keyword.as_bytes());
    data.push(0);
    data.extend_from_slice(text.as_bytes());
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(&data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(b"tEXt");
    crc.update(&data);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    let mut out = Vec::with_capacity(bytes.len() + chunk.len());
    out.extend_from_slice(&bytes[..33]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&bytes[33..]);
    Ok(out)
}

/// Insert a `COM` segment right after SOI.
fn jpeg_with_comment(bytes: &[u8], text: &str) -> Result<Vec<u8>, CorpusError> {
    if bytes.len() < 4 || bytes[..2] != [0xFF, 0xD8] {
        return Err(InputError::new("<jpeg>", "not a JPEG file").into());
    }
    let len = (text.len() + 2) as u16;
    let mut out = Vec::with_capacity(bytes.len() + text.len() + 4);
    out.extend_from_slice(&bytes[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[2..]);
    Ok(out)
}

/// A copy of a document with new bytes and the same extracted text.
pub fn fresh_document(
    path: &Path,
    bytes: &[u8],
    format: Format,
    seed: u64,
) -> Result<Vec<u8>, CorpusError> {
    let nonce = nonce(seed);
    match format {
        Format::Txt => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                InputError::new(path, "text file is not UTF-8").hint("convert it to UTF-8")
            })?;
            let mut out = text.trim_end().to_string();
            out.push('\n');
            // 32 bits of the nonce as blanks (0) and tabs (1): trailing white
            // space, which text extraction trims.
            let bits = u32::from_str_radix(&nonce[..8], 16).expect("hex nonce");
            for i in 0..32 {
                out.push(if bits >> i & 1 == 1 { '\t' } else { ' ' });
            }
            out.push('\n');
            Ok(out.into_bytes())
        }
        Format::Pdf => {
            if !bytes.starts_with(b"%PDF") {
                return Err(InputError::new(path, "not a PDF file (no %PDF header)").into());
            }
            let mut out = bytes.to_vec();
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(format!("%chatprobe-fresh {nonce}\n").as_bytes());
            Ok(out)
        }
        Format::Docx => docx_with_comment(path, bytes, &format!("chatprobe-fresh {nonce}")),
        Format::Png | Format::Jpeg => unreachable!("fresh_document called on an image"),
    }
}

/// Rewrite a zip (docx) with every entry copied raw and a new archive comment.
fn docx_with_comment(path: &Path, bytes: &[u8], comment: &str) -> Result<Vec<u8>, CorpusError> {
    let bad = |e: zip::result::ZipError| -> CorpusError {
        InputError::new(path, format!("corrupt DOCX (zip): {e}")).into()
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len() + 64)));
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(bad)?;
        writer.raw_copy_file(file).map_err(bad)?;
    }
    writer.set_comment(comment).map_err(bad)?;
    let cursor = writer.finish().map_err(bad)?;
    Ok(cursor.into_inner())
}

/// Read one entry of a zip archive as bytes (used by docx text extraction).
pub(crate) fn zip_entry(bytes: &[u8], name: &str) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut entry = archive.by_name(name)?;
    let mut out = Vec::new();
    entry.read_to_end(&mut out)?;
    Ok(out)
}

/// Build a minimal, deterministic DOCX holding `paragraphs` (used by the
/// corpus generator and by tests). Fixed timestamps make it byte-identical
/// from run to run.
pub fn minimal_docx(title: &str, paragraphs: &[&str]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = String::new();
    for p in std::iter::once(title).chain(paragraphs.iter().copied()) {
        body.push_str(&format!(
            "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
            esc(p)
        ));
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}<w:sectPr/></w:body></w:document>"
    );
    let files: [(&str, String); 4] = [
        ("[Content_Types].xml", "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>".to_string()),
        ("_rels/.rels", "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>".to_string()),
        ("word/_rels/document.xml.rels", "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"></Relationships>".to_string()),
        ("word/document.xml", document),
    ];
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, content) in files {
        writer.start_file(name, options).expect("zip entry");
        writer.write_all(content.as_bytes()).expect("zip write");
    }
    writer.finish().expect("zip finish").into_inner()
}
