//! Identity: how a probe is recognised on the receiver's side, for clients
//! that show no platform message ids.
//!
//! A profile's `[identity]` table says, for each kind of message, what
//! chatprobe compares (docs/PROFILES.md):
//!
//! - texts — `whole` (the text as sent, the default) or `nonce`: every text
//!   chatprobe sends ends with a *tag*, a space and twelve box-drawing
//!   characters spelling the send's nonce ([`tag`]); a text is recognised by
//!   its tag alone, whatever the client does to the rest (links, styling,
//!   trimming). Keywords may not contain tag characters (the keyword readers
//!   refuse them) nor start or end with a space, so appending the tag can
//!   neither create a keyword match nor break one: any occurrence of a
//!   keyword in `words + " " + tag` lies inside `words`.
//! - documents — `name`: the file name, from a platform attribute or from
//!   the name the client shows (`messages.file_name`).
//! - images — `name` as documents, or `picture`: an element screenshot of the
//!   received bubble (`messages.image`), compared with the picture that was
//!   sent ([`Candidate`]). First the 64-bit pHash: candidates farther than
//!   `max_distance` bits are not this bubble. When several images in flight
//!   in the chat are that close (two fresh copies of one item differ by
//!   0–2 bits), their pixels decide: on a grid of the original's 8×8 blocks,
//!   the bubble's position on the line between two candidates, `z` (+1 = the
//!   first exactly, −1 = the second, 0 = half way). The best candidate must
//!   beat every other close one by `z ≥ margin`; otherwise the bubble is
//!   ambiguous, and an ambiguous probe is `lost` (failure
//!   `ambiguous_image`), never `delivered` or `blocked`.
//!
//! The comparison of a sum of squared differences is written here rather
//! than taken from a crate: what is needed is the projection onto the
//! difference of two known candidates, which no image-similarity crate
//! offers (SSIM, or a distance to one picture, cannot say *which* of two
//! near-identical pictures it is).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use image::{imageops::FilterType, DynamicImage, GrayImage};
use serde::Deserialize;

use crate::corpus::hash::{luminosity, Hash64, PerceptualHasher};
pub use crate::corpus::keywords::TAG_ALPHABET;

/// How many characters a tag has (one per hex digit of the nonce).
pub const TAG_LEN: usize = 12;

/// The tag of a nonce: its first [`TAG_LEN`] hex digits, one tag character
/// each (other characters count as 0).
pub fn tag(nonce: &str) -> String {
    let mut hex: Vec<u32> = nonce
        .chars()
        .filter_map(|c| c.to_digit(16))
        .take(TAG_LEN)
        .collect();
    hex.resize(TAG_LEN, 0);
    hex.into_iter().map(|d| TAG_ALPHABET[d as usize]).collect()
}

/// `words` with the nonce's tag appended (a space, then the tag).
pub fn tagged(words: &str, nonce: &str) -> String {
    format!("{} {}", words.trim_end(), tag(nonce))
}

/// The tag a text ends with, if it has one.
pub fn tag_of(text: &str) -> Option<&str> {
    let t = text.trim_end();
    let start = t.char_indices().rev().nth(TAG_LEN - 1)?.0;
    let tail = &t[start..];
    let ok = tail.chars().all(|c| TAG_ALPHABET.contains(&c))
        && t[..start].ends_with(char::is_whitespace);
    ok.then_some(tail)
}

/// How texts are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextRule {
    /// The whole text, as sent (trimmed).
    #[default]
    Whole,
    /// The tag at its end.
    Nonce,
}

/// How files (documents, or images by name) are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRule {
    /// The file name: `messages.filename_attr` or `messages.file_name`.
    #[default]
    Name,
    /// The picture (images only).
    Picture,
}

fn default_max_distance() -> u32 {
    12
}
fn default_margin() -> f64 {
    0.5
}

/// `[identity]` of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Texts: `whole` or `nonce`.
    #[serde(default)]
    pub text: TextRule,
    /// Documents: `name`.
    #[serde(default)]
    pub document: FileRule,
    /// Images: `name` or `picture`.
    #[serde(default)]
    pub image: FileRule,
    /// Pictures: the largest pHash distance (bits) between a bubble and the
    /// picture sent that can still be a match.
    #[serde(default = "default_max_distance")]
    pub max_distance: u32,
    /// Pictures: how clearly the best of several close candidates must win
    /// (`z`, 0–2; see the module doc).
    #[serde(default = "default_margin")]
    pub margin: f64,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            text: TextRule::Whole,
            document: FileRule::Name,
            image: FileRule::Name,
            max_distance: default_max_distance(),
            margin: default_margin(),
        }
    }
}

/// Whether a file is an image (by its extension).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// A received picture: the screenshot of a bubble.
#[derive(Debug)]
pub struct Picture {
    /// Its pHash.
    pub phash: Hash64,
    /// Its pixels in luminosity grey.
    pub grey: GrayImage,
}

impl Picture {
    /// From an element screenshot (PNG bytes).
    pub fn from_png(bytes: &[u8]) -> Option<Picture> {
        let img = image::load_from_memory(bytes).ok()?;
        if img.width() < 8 || img.height() < 8 {
            return None;
        }
        Some(Picture::new(&img))
    }

    /// From a decoded image.
    pub fn new(img: &DynamicImage) -> Picture {
        Picture {
            phash: PerceptualHasher::new().hash(img).phash,
            grey: luminosity(img),
        }
    }
}

/// An image sent into a chat and not yet recognised on the other side.
#[derive(Debug)]
pub struct Candidate {
    /// The file's name (its marker).
    pub marker: String,
    /// The file.
    pub path: PathBuf,
    /// Its picture.
    pub picture: Picture,
    /// When it was sent.
    pub sent: Instant,
    /// The picture as the sender's own client showed it: rendered by the
    /// same client as the receiver's bubble, so the two differ only where
    /// the pictures do.
    pub shown: OnceLock<Arc<Picture>>,
    /// [`file_distance`]s computed, by bubble (pHash and size).
    file_distances: Mutex<HashMap<BubbleKey, u32>>,
}

/// A bubble, for caching: its pHash and size.
type BubbleKey = (u64, (u32, u32));

impl Candidate {
    /// Decode `path`; None if it is not a readable image.
    pub fn load(path: &Path) -> Option<Candidate> {
        let bytes = std::fs::read(path).ok()?;
        let img = image::load_from_memory(&bytes).ok()?;
        Some(Candidate {
            marker: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            picture: Picture::new(&img),
            sent: Instant::now(),
            shown: OnceLock::new(),
            file_distances: Mutex::default(),
        })
    }
}

impl Candidate {
    /// How far (pHash bits) the bubble `seen` is from this picture: from the
    /// sender's own rendering when it is known (the same client draws both,
    /// so they differ by its noise alone), else from the file drawn as a
    /// client may draw it ([`file_distance`], kept per bubble).
    pub fn distance(&self, seen: &Picture) -> u32 {
        if let Some(p) = self.shown.get() {
            return seen.phash.distance(p.phash);
        }
        let key = (seen.phash.0, seen.grey.dimensions());
        if let Some(d) = self.file_distances.lock().expect("distances").get(&key) {
            return *d;
        }
        let d = file_distance(seen, &self.picture);
        self.file_distances
            .lock()
            .expect("distances")
            .insert(key, d);
        d
    }
}

fn phash_of(grey: GrayImage) -> Hash64 {
    PerceptualHasher::new()
        .hash(&DynamicImage::ImageLuma8(grey))
        .phash
}

/// The file `file` against the bubble `seen` when only the file is known
/// (a resumed run). The file is drawn the ways a client draws a picture —
/// scaled to the bubble's size with a smoothing filter (a client's
/// downscale, which the hash's area average does not reproduce on fine
/// detail); centre-cropped to the bubble's shape and scaled (a square
/// thumbnail); scaled into what is left of the bubble once plain letterbox
/// bars are cut off — and the drawing that agrees best with the bubble
/// pixel for pixel gives the pHash distance, if it agrees closely enough
/// (Pearson r ≥ 0.98); else the bubble is not this file (64 bits). On the
/// starter corpus a 120-pixel JPEG thumbnail is 0–6 bits from its own file
/// (r ≥ 0.986) and every other file is rejected (r ≤ 0.963).
pub fn file_distance(seen: &Picture, file: &Picture) -> u32 {
    let d = |h: Hash64| seen.phash.distance(h);
    let (bw, bh) = seen.grey.dimensions();
    let f = &file.grey;
    let plain = d(file.phash);
    if bw < 8 || bh < 8 || f.width() < 8 || f.height() < 8 {
        return plain;
    }
    // (distance, the bubble's part compared, the file drawn to match it)
    let mut views: Vec<(u32, GrayImage, GrayImage)> = Vec::new();
    let scaled = image::imageops::resize(f, bw, bh, FilterType::Triangle);
    views.push((d(phash_of(scaled.clone())), seen.grey.clone(), scaled));
    let (cw, ch) = centre_crop(f.dimensions(), (bw, bh));
    if (cw, ch) != f.dimensions() {
        let crop =
            image::imageops::crop_imm(f, (f.width() - cw) / 2, (f.height() - ch) / 2, cw, ch)
                .to_image();
        let thumb = image::imageops::resize(&crop, bw, bh, FilterType::Triangle);
        views.push((d(phash_of(thumb.clone())), seen.grey.clone(), thumb));
    }
    if let Some((x, y, w, h)) = letterbox(&seen.grey) {
        let inner = image::imageops::crop_imm(&seen.grey, x, y, w, h).to_image();
        let scaled = image::imageops::resize(f, w, h, FilterType::Triangle);
        views.push((
            phash_of(inner.clone()).distance(phash_of(scaled.clone())),
            inner,
            scaled,
        ));
    }
    // The nearest drawing by hash must also agree pixel for pixel: 64 bits
    // alone cannot tell a small thumbnail of one picture from another
    // picture of the same kind (8 bits apart in the starter corpus).
    match best_view(views) {
        Some((dist, r)) if r >= MIN_CORRELATION => dist,
        _ => plain.max(MAX_HASH_BITS),
    }
}

/// The view with the highest pixel correlation: (its hash distance, the
/// correlation).
fn best_view(views: Vec<(u32, GrayImage, GrayImage)>) -> Option<(u32, f64)> {
    views
        .into_iter()
        .map(|(dist, a, b)| (dist, correlation(&a, &b)))
        .max_by(|x, y| x.1.total_cmp(&y.1))
}

/// The least Pearson correlation of grey levels between a bubble and the
/// file drawn as the client drew it for the two to be the same picture.
const MIN_CORRELATION: f64 = 0.98;
/// What a file that does not match at all is reported as (every bit).
const MAX_HASH_BITS: u32 = 64;

/// Pearson correlation of two same-size grey pictures (0 if either is flat).
pub fn correlation(a: &GrayImage, b: &GrayImage) -> f64 {
    if a.dimensions() != b.dimensions() {
        return 0.0;
    }
    let n = f64::from(a.width() * a.height());
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (x, y) = (f64::from(p.0[0]), f64::from(q.0[0]));
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    let va = saa - sa * sa / n;
    let vb = sbb - sb * sb / n;
    if va <= 1e-9 || vb <= 1e-9 {
        return 0.0;
    }
    (sab - sa * sb / n) / (va * vb).sqrt()
}

/// The largest centred part of a `(w, h)` picture with the shape of `to`.
fn centre_crop((w, h): (u32, u32), (tw, th): (u32, u32)) -> (u32, u32) {
    let (w64, h64, tw, th) = (u64::from(w), u64::from(h), u64::from(tw), u64::from(th));
    if w64 * th > h64 * tw {
        (((h64 * tw) / th).max(1) as u32, h)
    } else {
        (w, ((w64 * th) / tw).max(1) as u32)
    }
}

/// The picture inside plain bars along the edges of `g` (rows or columns
/// of one grey, ±4): `(x, y, w, h)`, or None if there are no bars or
/// nothing worth comparing is left.
fn letterbox(g: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = g.dimensions();
    let plain = |px: &mut dyn Iterator<Item = u8>| {
        let (mut lo, mut hi) = (u8::MAX, u8::MIN);
        for p in px {
            lo = lo.min(p);
            hi = hi.max(p);
        }
        hi - lo <= 8
    };
    let row = |y: u32| plain(&mut (0..w).map(|x| g.get_pixel(x, y).0[0]));
    let col = |x: u32| plain(&mut (0..h).map(|y| g.get_pixel(x, y).0[0]));
    let (mut top, mut bottom) = (0, h);
    while top < bottom && row(top) {
        top += 1;
    }
    while bottom > top && row(bottom - 1) {
        bottom -= 1;
    }
    let (mut left, mut right) = (0, w);
    while left < right && col(left) {
        left += 1;
    }
    while right > left && col(right - 1) {
        right -= 1;
    }
    let (iw, ih) = (right - left, bottom - top);
    ((iw, ih) != (w, h) && iw >= 16 && ih >= 16).then_some((left, top, iw, ih))
}

/// Grey pixels as f32 in 0–1 (the `image` crate's range for float
/// pixels), so that resampling keeps fractions of a grey level: the
/// difference between two fresh copies is one or two levels.
fn as_f32(img: &GrayImage) -> image::ImageBuffer<image::Luma<f32>, Vec<f32>> {
    image::ImageBuffer::from_fn(img.width(), img.height(), |x, y| {
        image::Luma([f32::from(img.get_pixel(x, y).0[0]) / 255.0])
    })
}

fn on_grid(img: &GrayImage, (w, h): (u32, u32)) -> Vec<f64> {
    let f = as_f32(img);
    let v = if (w, h) == img.dimensions() {
        f.into_raw()
    } else {
        image::imageops::resize(&f, w, h, FilterType::Triangle).into_raw()
    };
    v.into_iter().map(|x| f64::from(x) * 255.0).collect()
}

/// How a candidate is compared with a bubble: as its sender's client showed
/// it when that has the bubble's size (same renderer: pixel for pixel),
/// else from its file on a grid of the file's 8×8 blocks.
fn view<'a>(bubble: &GrayImage, c: &'a Candidate) -> (&'a GrayImage, bool) {
    match c.shown.get() {
        Some(p) if p.grey.dimensions() == bubble.dimensions() => (&p.grey, true),
        _ => (&c.picture.grey, false),
    }
}

/// Where `bubble` lies between candidates `a` and `b`: +1 exactly `a`, −1
/// exactly `b`, 0 half way. None: `a` and `b` look the same (nothing can
/// tell them apart).
pub fn position(bubble: &GrayImage, a: &Candidate, b: &Candidate) -> Option<f64> {
    let ((va, sa), (vb, sb)) = (view(bubble, a), view(bubble, b));
    let (ga, gb, s) = if sa && sb {
        let g = bubble.dimensions();
        (on_grid(va, g), on_grid(vb, g), on_grid(bubble, g))
    } else {
        let (a, b) = (&a.picture.grey, &b.picture.grey);
        let g = (
            (a.width() / 8).clamp(1, bubble.width().max(1)),
            (a.height() / 8).clamp(1, bubble.height().max(1)),
        );
        (on_grid(a, g), on_grid(b, g), on_grid(bubble, g))
    };
    if ga.len() != gb.len() {
        return None;
    }
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..s.len() {
        let d = ga[i] - gb[i];
        // ssd_b − ssd_a = Σ (a−b)(2s − a − b)
        num += d * (2.0 * s[i] - ga[i] - gb[i]);
        den += d * d;
    }
    (den > 1e-6).then(|| num / den)
}

/// How a bubble compares with a probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PictureMatch {
    /// Not this probe.
    No,
    /// This probe: the pHash distance, and the smallest `z` over the other
    /// close candidates (None if there were none).
    Yes {
        /// pHash distance in bits.
        distance: u32,
        /// Smallest position against another candidate.
        margin: Option<f64>,
    },
    /// Close to this probe and to another, and not clearly either.
    Ambiguous {
        /// pHash distance in bits.
        distance: u32,
    },
}

/// Compare the bubble `seen` with `probe`, among the `others` in flight.
pub fn compare(
    seen: &Picture,
    probe: &Candidate,
    others: &[Arc<Candidate>],
    rule: &Identity,
) -> PictureMatch {
    let distance = probe.distance(seen);
    if distance > rule.max_distance {
        return PictureMatch::No;
    }
    let mut least: Option<f64> = None;
    for o in others {
        if o.marker == probe.marker || o.distance(seen) > rule.max_distance {
            continue;
        }
        let Some(z) = position(&seen.grey, probe, o) else {
            return PictureMatch::Ambiguous { distance };
        };
        if z <= -rule.margin {
            return PictureMatch::No;
        }
        least = Some(least.map_or(z, |l: f64| l.min(z)));
    }
    match least {
        Some(z) if z < rule.margin => PictureMatch::Ambiguous { distance },
        margin => PictureMatch::Yes { distance, margin },
    }
}

/// The images in flight in each chat: sent, not yet recognised, and sent
/// less than `window` ago (a message later than that would contradict an
/// outcome already recorded). Shared by every transmission of a platform.
#[derive(Debug, Default)]
pub struct InFlight {
    chats: Mutex<HashMap<String, Vec<Arc<Candidate>>>>,
}

impl InFlight {
    /// Add `c` to `chat`, forgetting what is older than `window`.
    pub fn add(&self, chat: &str, c: Arc<Candidate>, window: Duration) {
        let mut m = self.chats.lock().expect("in flight");
        let v = m.entry(chat.to_string()).or_default();
        v.retain(|o| o.sent.elapsed() < window && o.marker != c.marker);
        v.push(c);
    }

    /// What is in flight in `chat`.
    pub fn get(&self, chat: &str) -> Vec<Arc<Candidate>> {
        self.chats
            .lock()
            .expect("in flight")
            .get(chat)
            .cloned()
            .unwrap_or_default()
    }

    /// `marker` was recognised: no longer in flight.
    pub fn remove(&self, chat: &str, marker: &str) {
        if let Some(v) = self.chats.lock().expect("in flight").get_mut(chat) {
            v.retain(|o| o.marker != marker);
        }
    }
}

/// A screenshot cache, by WebDriver element reference: a bubble is
/// photographed once per session.
#[derive(Debug, Default)]
pub struct Screenshots {
    seen: Mutex<HashMap<String, Arc<Picture>>>,
}

impl Screenshots {
    /// The picture of element `id`, if taken.
    pub fn get(&self, id: &str) -> Option<Arc<Picture>> {
        self.seen.lock().expect("screenshots").get(id).cloned()
    }

    /// Keep the picture of element `id`.
    pub fn put(&self, id: &str, p: Arc<Picture>) {
        let mut m = self.seen.lock().expect("screenshots");
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(id.to_string(), p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_cannot_touch_keywords() {
        let t = tagged("法轮功", "0123456789abcdef");
        assert_eq!(tag_of(&t), Some(tag("0123456789ab").as_str()));
        assert_eq!(tag_of("法轮功"), None);
        assert_eq!(tag_of("x ──"), None);
        assert!(crate::corpus::keywords::keyword_problem("a┼b").is_some());
        assert!(crate::corpus::keywords::keyword_problem("六四").is_none());
        // Any occurrence of a tag-free keyword in the tagged text is in the words.
        for kw in ["功", "法轮功", "8964", "功─"] {
            assert_eq!(t.contains(kw), "法轮功".contains(kw));
        }
    }

    fn picture(seed: u64) -> GrayImage {
        GrayImage::from_fn(160, 120, |x, y| {
            image::Luma([((x * 7 + y * 3 + seed as u32 * 40) % 200 + 20) as u8])
        })
    }

    fn candidate(marker: &str, grey: &GrayImage) -> Candidate {
        Candidate {
            marker: marker.into(),
            path: PathBuf::new(),
            picture: Picture::new(&DynamicImage::ImageLuma8(grey.clone())),
            sent: Instant::now(),
            shown: OnceLock::new(),
            file_distances: Mutex::default(),
        }
    }

    #[test]
    fn position_tells_two_near_copies_apart() {
        let a = picture(0);
        let mut b = a.clone();
        for (bx, by) in [(3, 4), (10, 2), (15, 10)] {
            for y in by * 8..by * 8 + 8 {
                for x in bx * 8..bx * 8 + 8 {
                    b.get_pixel_mut(x, y).0[0] += 3;
                }
            }
        }
        let (ca, cb) = (candidate("a", &a), candidate("b", &b));
        let shown_a = image::imageops::resize(&a, 80, 60, FilterType::CatmullRom);
        let shown_b = image::imageops::resize(&b, 80, 60, FilterType::CatmullRom);
        // From the files.
        assert!(position(&shown_a, &ca, &cb).unwrap() > 0.5);
        assert!(position(&shown_b, &ca, &cb).unwrap() < -0.5);
        // As the sender's client showed them: exact.
        let _ = ca
            .shown
            .set(Arc::new(Picture::new(&DynamicImage::ImageLuma8(
                shown_a.clone(),
            ))));
        let _ = cb
            .shown
            .set(Arc::new(Picture::new(&DynamicImage::ImageLuma8(
                shown_b.clone(),
            ))));
        assert!((position(&shown_a, &ca, &cb).unwrap() - 1.0).abs() < 1e-6);
        assert!((position(&shown_b, &ca, &cb).unwrap() + 1.0).abs() < 1e-6);
        let twin = candidate("a2", &a);
        assert_eq!(position(&shown_a, &ca, &twin), None);
    }
}

#[cfg(test)]
mod drawn {
    use super::*;

    fn corpus() -> Vec<(String, DynamicImage)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/images");
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.into_iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    image::open(&p).unwrap(),
                )
            })
            .collect()
    }

    /// A client's square thumbnail: centre-cropped, scaled, re-encoded.
    fn thumbnail(img: &DynamicImage, side: u32) -> DynamicImage {
        let s = img.width().min(img.height());
        let c = img.crop_imm((img.width() - s) / 2, (img.height() - s) / 2, s, s);
        let small = c.resize_exact(side, side, FilterType::CatmullRom);
        let mut jpeg = Vec::new();
        small
            .to_rgb8()
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut jpeg, 60,
            ))
            .unwrap();
        image::load_from_memory(&jpeg).unwrap()
    }

    /// Letterboxed in a grey frame.
    fn letterboxed(img: &DynamicImage) -> DynamicImage {
        let small = img.resize(200, 200, FilterType::CatmullRom);
        let mut frame = image::RgbImage::from_pixel(240, 240, image::Rgb([230, 230, 230]));
        image::imageops::overlay(
            &mut frame,
            &small.to_rgb8(),
            i64::from((240 - small.width()) / 2),
            i64::from((240 - small.height()) / 2),
        );
        DynamicImage::ImageRgb8(frame)
    }

    #[test]
    fn the_file_is_recognised_however_a_client_draws_it() {
        let all = corpus();
        let files: Vec<Picture> = all.iter().map(|(_, i)| Picture::new(i)).collect();
        for (how, draw) in [
            (
                "thumbnail",
                &(|i: &DynamicImage| thumbnail(i, 120)) as &dyn Fn(&DynamicImage) -> DynamicImage,
            ),
            ("letterbox", &letterboxed),
        ] {
            let mut own_worst = 0;
            let mut other_best = 64;
            for (k, (name, img)) in all.iter().enumerate() {
                let seen = Picture::new(&draw(img));
                let own = file_distance(&seen, &files[k]);
                let plain = seen.phash.distance(files[k].phash);
                own_worst = own_worst.max(own);
                let mut near = (64, 0);
                for (j, f) in files.iter().enumerate() {
                    if j != k {
                        near = near.min((file_distance(&seen, f), j));
                    }
                }
                other_best = other_best.min(near.0);
                eprintln!(
                    "{how} {name}: {own} bits (plain pHash {plain}); nearest other {} at {} bits",
                    all[near.1].0, near.0
                );
            }
            eprintln!("{how}: own at most {own_worst}, others at least {other_best}");
            assert!(own_worst <= 8, "{how}: {own_worst}");
            assert!(other_best > default_max_distance(), "{how}: {other_best}");
        }
    }
}
