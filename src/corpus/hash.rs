//! Content hashes: MD5 and SHA-256 of the bytes, and two 64-bit perceptual
//! hashes of the picture, with [`image_hasher`] on the current `image` crate.
//!
//! - `phash`: DCT hash (8×8 low frequencies of a 16×16 DCT, each bit "above
//!   the median"), image_hasher's `HashAlg::Median` + `preproc_dct`;
//! - `dhash`: gradient (difference) hash, image_hasher's `HashAlg::Gradient`.
//!
//! Both are taken from a 64×64 area-averaged (box filter) thumbnail in
//! luminosity grey (0.299 R + 0.587 G + 0.114 B), not from the full-size
//! picture: a full-size Lanczos resize would cost more than decoding, and the
//! hashes look at 16×16 and 9×8 pixels anyway. JPEG files are decoded straight
//! to their luma channel (zune-jpeg), which *is* that luminosity and skips
//! chroma upsampling and colour conversion: about 1.8× faster than a full
//! RGB decode. Perceptual hashes from different tools are different bits:
//! compare chatprobe hashes only with chatprobe hashes. Hashes print as 16
//! lowercase hex digits.

use std::path::Path;

use image::{DynamicImage, GrayImage, ImageFormat};
use image_hasher::{HashAlg, Hasher, HasherConfig};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::CorpusError;
use crate::error::InputError;

/// Side of the grey thumbnail the perceptual hashes are computed from.
pub const THUMB_SIDE: u32 = 64;

/// MD5 of `bytes`, lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decode an image from its bytes, guessing the format from the content.
/// A corrupt, truncated or unsupported file is an input error naming `path`.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<DynamicImage, CorpusError> {
    let corrupt = |msg: String| -> CorpusError {
        InputError::new(path, format!("corrupt or unreadable image: {msg}"))
            .hint("replace the file, or remove it from the manifest")
            .into()
    };
    let format = image::guess_format(bytes).map_err(|e| corrupt(e.to_string()))?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(corrupt(
            "JPEG data ends before its end-of-image marker (truncated)".into(),
        ));
    }
    image::load_from_memory_with_format(bytes, format).map_err(|e| corrupt(e.to_string()))
}

/// Whether a JPEG file ends with its EOI marker (FF D9), allowing trailing
/// padding. The JPEG decoder fills a truncated scan with grey instead of
/// failing, so truncation is checked here.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// A 64-bit perceptual hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash64(pub u64);

impl Hash64 {
    /// Hamming distance in bits.
    pub fn distance(self, other: Hash64) -> u32 {
        (self.0 ^ other.0).count_ones()
    }

    /// Parse 16 hex digits.
    pub fn parse(s: &str) -> Option<Hash64> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Hash64)
    }
}

impl std::fmt::Display for Hash64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The perceptual hashes and size of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHashes {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// DCT perceptual hash.
    pub phash: Hash64,
    /// Gradient hash.
    pub dhash: Hash64,
}

/// Computes pHash and dHash. Cheap to build; build one per thread.
pub struct PerceptualHasher {
    phash: Hasher,
    dhash: Hasher,
}

impl Default for PerceptualHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PerceptualHasher {
    /// The hasher with chatprobe's fixed configuration.
    pub fn new() -> Self {
        PerceptualHasher {
            phash: HasherConfig::new()
                .hash_size(8, 8)
                .hash_alg(HashAlg::Median)
                .preproc_dct()
                .to_hasher(),
            dhash: HasherConfig::new()
                .hash_size(8, 8)
                .hash_alg(HashAlg::Gradient)
                .to_hasher(),
        }
    }

    /// Hash a decoded image.
    pub fn hash(&self, img: &DynamicImage) -> ImageHashes {
        self.hash_thumbnail(img.width(), img.height(), &grey_thumbnail(img))
    }

    /// Decode and hash image bytes. JPEGs take the fast luma-only path.
    pub fn hash_bytes(&self, path: &Path, bytes: &[u8]) -> Result<ImageHashes, CorpusError> {
        if image::guess_format(bytes).ok() == Some(ImageFormat::Jpeg) {
            let luma = decode_jpeg_luma(path, bytes)?;
            let (w, h) = luma.dimensions();
            return Ok(self.hash_thumbnail(
                w,
                h,
                &shrink(&DynamicImage::ImageLuma8(luma)).into_luma8(),
            ));
        }
        Ok(self.hash(&decode_image(path, bytes)?))
    }

    fn hash_thumbnail(&self, width: u32, height: u32, thumb: &GrayImage) -> ImageHashes {
        ImageHashes {
            width,
            height,
            phash: to_u64(self.phash.hash_image(thumb).as_bytes()),
            dhash: to_u64(self.dhash.hash_image(thumb).as_bytes()),
        }
    }
}

/// Decode a JPEG to its luma (Y) channel only.
pub fn decode_jpeg_luma(path: &Path, bytes: &[u8]) -> Result<GrayImage, CorpusError> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let corrupt = |msg: String| -> CorpusError {
        InputError::new(path, format!("corrupt or unreadable image: {msg}"))
            .hint("replace the file, or remove it from the manifest")
            .into()
    };
    if !jpeg_is_complete(bytes) {
        return Err(corrupt(
            "JPEG data ends before its end-of-image marker (truncated)".into(),
        ));
    }
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec =
        zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), opts);
    let pixels = dec.decode().map_err(|e| corrupt(format!("{e:?}")))?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| corrupt("no image dimensions".into()))?;
    GrayImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| corrupt("decoded size does not match the header".into()))
}

fn to_u64(bytes: &[u8]) -> Hash64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    Hash64(u64::from_be_bytes(b))
}

/// Area-average the image down to at most 64×64 and convert it to
/// luminosity grey. Small images are only converted.
pub fn grey_thumbnail(img: &DynamicImage) -> GrayImage {
    luminosity(&shrink(img))
}

/// Luminosity grey, 0.299 R + 0.587 G + 0.114 B (rounded).
pub fn luminosity(img: &DynamicImage) -> GrayImage {
    if let DynamicImage::ImageLuma8(g) = img {
        return g.clone();
    }
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let px: Vec<u8> = rgb
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
        })
        .collect();
    GrayImage::from_raw(w, h, px).expect("same size")
}

/// Box-filter the image down to at most 64×64 (8-bit grey, RGB or RGBA kept;
/// other pixel types become RGB).
///
/// This is `fast_image_resize`'s SIMD convolution: about 10× faster than
/// `image::imageops::thumbnail`, which made hashing cost half a decode.
fn shrink(img: &DynamicImage) -> DynamicImage {
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let (w, h) = (img.width(), img.height());
    let (tw, th) = (w.min(THUMB_SIDE), h.min(THUMB_SIDE));
    let converted;
    let src: &DynamicImage = match img {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) | DynamicImage::ImageLuma8(_) => {
            img
        }
        other => {
            converted = DynamicImage::ImageRgb8(other.to_rgb8());
            &converted
        }
    };
    if (tw, th) == (w, h) {
        return src.clone();
    }
    let mut dst = match src {
        DynamicImage::ImageRgba8(_) => DynamicImage::ImageRgba8(image::RgbaImage::new(tw, th)),
        DynamicImage::ImageLuma8(_) => DynamicImage::ImageLuma8(GrayImage::new(tw, th)),
        _ => DynamicImage::ImageRgb8(image::RgbImage::new(tw, th)),
    };
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    match Resizer::new().resize(src, &mut dst, Some(&options)) {
        Ok(()) => dst,
        // Not expected for 8-bit images; fall back to the portable path.
        Err(_) => src.thumbnail_exact(tw, th),
    }
}
