//! Transform specs and how they apply.
//!
//! A spec is `name` or `name:param`, e.g. `mirror`, `crop:0.1`, `jpeg:40`.
//! Image transforms follow the evasion tests of "(Can't) Picture This"
//! (mirror, squash, border, Otsu black-and-white, blur steps, tiles) plus the
//! usual suspects (crop, rotate, JPEG quality, noise). `fresh` and
//! `fresh-meta` make fresh copies (see [`super::fresh`]). Every transform is
//! deterministic; those drawing random numbers (`fresh`, `fresh-meta`,
//! `noise`) draw them from the seed given with `--seed`.
//!
//! Output files are PNG, so that a transform is exactly what it says and no
//! JPEG loss is mixed in; except `jpeg:Q` (JPEG at quality Q) and the fresh
//! copies, which keep the item's format (a fresh JPEG is saved at quality 95).
//!
//! | spec | effect |
//! |---|---|
//! | `mirror` / `flip` | left↔right / top↔bottom |
//! | `rotate:DEG` | clockwise; 90/180/270 exact, other angles about the centre on a white canvas of the same size |
//! | `crop:FRAC` | keep the centre, cutting FRAC of the width and of the height in all (0 < FRAC < 1) |
//! | `border:PX` | a black border PX pixels wide on every side |
//! | `pad:FRAC` | white space of FRAC × the long side added to the long side, half at each end |
//! | `scale:F`, `squash-x:F`, `squash-y:F` | resize both sides / the width / the height by F (Catmull-Rom) |
//! | `grey` | luminosity grey, 0.299 R + 0.587 G + 0.114 B |
//! | `otsu` | luminosity grey, then black/white at Otsu's threshold |
//! | `blur:SIGMA` | Gaussian blur |
//! | `jpeg:Q` | re-encode as JPEG at quality Q (1–100) |
//! | `brightness:D` | add D (−255…255) to every channel |
//! | `noise:A` | add a seeded uniform integer in [−A, A] to every channel |
//! | `tile:N` | N copies side by side |
//! | `fresh` | images: imperceptible pixel change that survives JPEG re-encoding; documents: new bytes, same text |
//! | `fresh-meta` | images: only metadata changes (PNG text chunk, JPEG comment); documents: as `fresh` |

use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::str::FromStr;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgba, RgbaImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::manifest::{Format, ItemKind};
use super::{fresh, hash, CorpusError};
use crate::error::InputError;

/// JPEG quality of a `fresh` copy of a JPEG item.
pub const DEFAULT_JPEG_QUALITY: u8 = 95;

/// One transform, parsed from a spec string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Left↔right.
    Mirror,
    /// Top↔bottom.
    Flip,
    /// Clockwise rotation in degrees.
    Rotate(f32),
    /// Cut this fraction of each dimension, centred.
    Crop(f32),
    /// Black border of this many pixels.
    Border(u32),
    /// White space on the long side, as a fraction of it.
    Pad(f32),
    /// Resize both sides.
    Scale(f32),
    /// Resize the width.
    SquashX(f32),
    /// Resize the height.
    SquashY(f32),
    /// Luminosity grey.
    Grey,
    /// Otsu black and white.
    Otsu,
    /// Gaussian blur of this sigma.
    Blur(f32),
    /// JPEG at this quality.
    Jpeg(u8),
    /// Add to every channel.
    Brightness(i32),
    /// Seeded uniform noise of this amplitude.
    Noise(u8),
    /// This many copies side by side.
    Tile(u32),
    /// Fresh copy (new MD5, same content).
    Fresh,
    /// Fresh copy by metadata only.
    FreshMeta,
}

/// The names of every transform, for error messages and `--help`.
pub const TRANSFORM_NAMES: &str = "mirror, flip, rotate:DEG, crop:FRAC, border:PX, pad:FRAC, scale:F, squash-x:F, squash-y:F, grey, otsu, blur:SIGMA, jpeg:Q, brightness:D, noise:A, tile:N, fresh, fresh-meta";

impl Transform {
    /// Whether the transform draws random numbers (and so depends on the seed).
    pub fn is_seeded(self) -> bool {
        matches!(
            self,
            Transform::Fresh | Transform::FreshMeta | Transform::Noise(_)
        )
    }

    /// Whether the transform applies to items of this kind.
    pub fn applies_to(self, kind: ItemKind) -> bool {
        match self {
            Transform::Fresh | Transform::FreshMeta => true,
            _ => kind == ItemKind::Image,
        }
    }

    /// A file-name-safe slug, used in variant ids: `crop:0.1` → `crop_0.1`.
    pub fn slug(self) -> String {
        self.to_string().replace(':', "_")
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Transform::Mirror => write!(f, "mirror"),
            Transform::Flip => write!(f, "flip"),
            Transform::Rotate(d) => write!(f, "rotate:{d}"),
            Transform::Crop(x) => write!(f, "crop:{x}"),
            Transform::Border(px) => write!(f, "border:{px}"),
            Transform::Pad(x) => write!(f, "pad:{x}"),
            Transform::Scale(x) => write!(f, "scale:{x}"),
            Transform::SquashX(x) => write!(f, "squash-x:{x}"),
            Transform::SquashY(x) => write!(f, "squash-y:{x}"),
            Transform::Grey => write!(f, "grey"),
            Transform::Otsu => write!(f, "otsu"),
            Transform::Blur(s) => write!(f, "blur:{s}"),
            Transform::Jpeg(q) => write!(f, "jpeg:{q}"),
            Transform::Brightness(d) => write!(f, "brightness:{d}"),
            Transform::Noise(a) => write!(f, "noise:{a}"),
            Transform::Tile(n) => write!(f, "tile:{n}"),
            Transform::Fresh => write!(f, "fresh"),
            Transform::FreshMeta => write!(f, "fresh-meta"),
        }
    }
}

/// Why a spec did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad transform `{spec}`: {reason} (known: {TRANSFORM_NAMES})")]
pub struct SpecError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for Transform {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let spec = spec.trim();
        let err = |reason: &str| SpecError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, param) = match spec.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (spec, None),
        };
        let no_param = |t: Transform| match param {
            None => Ok(t),
            Some(_) => Err(err("takes no parameter")),
        };
        let float = |lo: f32, hi: f32, what: &str| -> Result<f32, SpecError> {
            let p = param.ok_or_else(|| err(&format!("needs a parameter: {what}")))?;
            let v: f32 = p
                .parse()
                .map_err(|_| err(&format!("`{p}` is not a number")))?;
            if !v.is_finite() || v <= lo || v >= hi {
                return Err(err(&format!("{what} must be > {lo} and < {hi}")));
            }
            Ok(v)
        };
        let int = |lo: i64, hi: i64, what: &str| -> Result<i64, SpecError> {
            let p = param.ok_or_else(|| err(&format!("needs a parameter: {what}")))?;
            let v: i64 = p
                .parse()
                .map_err(|_| err(&format!("`{p}` is not a whole number")))?;
            if v < lo || v > hi {
                return Err(err(&format!("{what} must be from {lo} to {hi}")));
            }
            Ok(v)
        };
        match name {
            "mirror" => no_param(Transform::Mirror),
            "flip" => no_param(Transform::Flip),
            "grey" | "gray" => no_param(Transform::Grey),
            "otsu" => no_param(Transform::Otsu),
            "fresh" => no_param(Transform::Fresh),
            "fresh-meta" => no_param(Transform::FreshMeta),
            "rotate" => Ok(Transform::Rotate(float(-360.0, 360.0, "DEG")?)),
            "crop" => Ok(Transform::Crop(float(0.0, 1.0, "FRAC")?)),
            "border" => Ok(Transform::Border(int(1, 10_000, "PX")? as u32)),
            "pad" => Ok(Transform::Pad(float(0.0, 10.0, "FRAC")?)),
            "scale" => Ok(Transform::Scale(float(0.0, 16.0, "F")?)),
            "squash-x" => Ok(Transform::SquashX(float(0.0, 16.0, "F")?)),
            "squash-y" => Ok(Transform::SquashY(float(0.0, 16.0, "F")?)),
            "blur" => Ok(Transform::Blur(float(0.0, 100.0, "SIGMA")?)),
            "jpeg" => Ok(Transform::Jpeg(int(1, 100, "Q")? as u8)),
            "brightness" => Ok(Transform::Brightness(int(-255, 255, "D")? as i32)),
            "noise" => Ok(Transform::Noise(int(1, 255, "A")? as u8)),
            "tile" => Ok(Transform::Tile(int(2, 64, "N")? as u32)),
            _ => Err(err("unknown transform")),
        }
    }
}

/// Parse a list of specs, each possibly comma-separated (`mirror,crop:0.1`).
/// Duplicates are dropped, order kept.
pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Transform>, InputError> {
    let mut out: Vec<Transform> = Vec::new();
    for s in specs {
        for part in s.as_ref().split(',').filter(|p| !p.trim().is_empty()) {
            let t: Transform = part
                .parse()
                .map_err(|e: SpecError| InputError::new("--transform", e.to_string()))?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    if out.is_empty() {
        return Err(InputError::new("--transform", "no transform given")
            .hint(format!("known: {TRANSFORM_NAMES}")));
    }
    Ok(out)
}

/// Apply `t` to the file `bytes` (of `format`, read from `path`), returning
/// the new file's bytes and format.
pub fn apply(
    t: Transform,
    path: &Path,
    bytes: &[u8],
    format: Format,
    seed: u64,
) -> Result<(Vec<u8>, Format), CorpusError> {
    match (t, format.kind()) {
        (Transform::FreshMeta, ItemKind::Image) => {
            // Check the file decodes, so a corrupt item is not copied on.
            hash::decode_image(path, bytes)?;
            Ok((fresh::fresh_meta_image(bytes, format, seed)?, format))
        }
        (Transform::Fresh | Transform::FreshMeta, ItemKind::Document) => {
            Ok((fresh::fresh_document(path, bytes, format, seed)?, format))
        }
        (_, ItemKind::Document) => {
            Err(InputError::new(path, format!("transform `{t}` applies to images only")).into())
        }
        (Transform::Jpeg(q), ItemKind::Image) => {
            let img = hash::decode_image(path, bytes)?;
            Ok((encode(&img, Format::Jpeg, q, path)?, Format::Jpeg))
        }
        (Transform::Fresh, ItemKind::Image) => {
            let img = hash::decode_image(path, bytes)?;
            let out = apply_image(t, &img, seed);
            Ok((encode(&out, format, DEFAULT_JPEG_QUALITY, path)?, format))
        }
        (_, ItemKind::Image) => {
            let img = hash::decode_image(path, bytes)?;
            let out = apply_image(t, &img, seed);
            Ok((encode(&out, Format::Png, 0, path)?, Format::Png))
        }
    }
}

/// Encode an image as PNG or JPEG (at `quality`).
pub fn encode(
    img: &DynamicImage,
    format: Format,
    quality: u8,
    path: &Path,
) -> Result<Vec<u8>, CorpusError> {
    let mut buf = Vec::new();
    let res = match format {
        Format::Jpeg => {
            let rgb = img.to_rgb8();
            JpegEncoder::new_with_quality(&mut buf, quality).encode_image(&rgb)
        }
        _ => img.write_to(&mut Cursor::new(&mut buf), ImageFormat::Png),
    };
    res.map_err(|source| CorpusError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(buf)
}

/// Decode an image and re-encode it as JPEG at `quality`, the way a chat
/// platform re-encodes uploads (the testbed uses this).
pub fn reencode_jpeg(path: &Path, bytes: &[u8], quality: u8) -> Result<Vec<u8>, CorpusError> {
    let img = hash::decode_image(path, bytes)?;
    encode(&img, Format::Jpeg, quality, path)
}

/// Luminosity grey with the weights of the published WeChat filter
/// description (0.299 R + 0.587 G + 0.114 B), not the Rec. 709 weights of
/// `image`'s `to_luma8`.
pub fn luminosity_grey(img: &DynamicImage) -> GrayImage {
    let rgb = img.to_rgb8();
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let p = rgb.get_pixel(x, y).0;
        let v = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

/// Apply an image transform to a decoded image.
pub fn apply_image(t: Transform, img: &DynamicImage, seed: u64) -> DynamicImage {
    use image::imageops::FilterType::CatmullRom;
    let (w, h) = (img.width(), img.height());
    let resize = |nw: f32, nh: f32| {
        img.resize_exact(
            (nw.round() as u32).max(1),
            (nh.round() as u32).max(1),
            CatmullRom,
        )
    };
    match t {
        Transform::Mirror => img.fliph(),
        Transform::Flip => img.flipv(),
        Transform::Rotate(deg) => rotate(img, deg),
        Transform::Crop(frac) => {
            let cw = ((w as f32 * frac).round() as u32).min(w - 1);
            let ch = ((h as f32 * frac).round() as u32).min(h - 1);
            img.crop_imm(cw / 2, ch / 2, w - cw, h - ch)
        }
        Transform::Border(px) => {
            let mut canvas = RgbaImage::from_pixel(w + 2 * px, h + 2 * px, Rgba([0, 0, 0, 255]));
            image::imageops::overlay(&mut canvas, &img.to_rgba8(), px as i64, px as i64);
            DynamicImage::ImageRgba8(canvas).into_rgb8().into()
        }
        Transform::Pad(frac) => {
            let (nw, nh, ox, oy) = if w >= h {
                let add = (w as f32 * frac).round() as u32;
                (w + add, h, add / 2, 0)
            } else {
                let add = (h as f32 * frac).round() as u32;
                (w, h + add, 0, add / 2)
            };
            let mut canvas = RgbaImage::from_pixel(nw, nh, Rgba([255, 255, 255, 255]));
            image::imageops::overlay(&mut canvas, &img.to_rgba8(), ox as i64, oy as i64);
            DynamicImage::ImageRgba8(canvas).into_rgb8().into()
        }
        Transform::Scale(f) => resize(w as f32 * f, h as f32 * f),
        Transform::SquashX(f) => resize(w as f32 * f, h as f32),
        Transform::SquashY(f) => resize(w as f32, h as f32 * f),
        Transform::Grey => DynamicImage::ImageLuma8(luminosity_grey(img)),
        Transform::Otsu => {
            let grey = luminosity_grey(img);
            let level = imageproc::contrast::otsu_level(&grey);
            DynamicImage::ImageLuma8(imageproc::contrast::threshold(
                &grey,
                level,
                imageproc::contrast::ThresholdType::Binary,
            ))
        }
        Transform::Blur(sigma) => img.blur(sigma),
        Transform::Jpeg(_) => img.clone(),
        Transform::Brightness(d) => img.brighten(d),
        Transform::Noise(a) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut rgb = img.to_rgb8();
            let a = a as i16;
            for v in rgb.iter_mut() {
                let n: i16 = rng.random_range(-a..=a);
                *v = (*v as i16 + n).clamp(0, 255) as u8;
            }
            DynamicImage::ImageRgb8(rgb)
        }
        Transform::Tile(n) => {
            let src = img.to_rgb8();
            let mut canvas = image::RgbImage::new(w * n, h);
            for i in 0..n {
                image::imageops::replace(&mut canvas, &src, (i * w) as i64, 0);
            }
            DynamicImage::ImageRgb8(canvas)
        }
        Transform::Fresh => fresh::fresh_pixels(img, seed),
        Transform::FreshMeta => img.clone(),
    }
}

fn rotate(img: &DynamicImage, deg: f32) -> DynamicImage {
    let norm = deg.rem_euclid(360.0);
    if norm == 0.0 {
        img.clone()
    } else if norm == 90.0 {
        img.rotate90()
    } else if norm == 180.0 {
        img.rotate180()
    } else if norm == 270.0 {
        img.rotate270()
    } else {
        let rgba = img.to_rgba8();
        let out = imageproc::geometric_transformations::rotate_about_center(
            &rgba,
            norm.to_radians(),
            imageproc::geometric_transformations::Interpolation::Bilinear,
            imageproc::geometric_transformations::Border::Constant(Rgba([255, 255, 255, 255])),
        );
        DynamicImage::ImageRgba8(out).into_rgb8().into()
    }
}
