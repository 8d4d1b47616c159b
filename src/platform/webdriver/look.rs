//! Looking at a chat: the scripts that read what a client shows (each
//! message's id, sender, file name, text and picture element), bring a
//! picture into view, tell a logged-in page from the login page, and cut
//! the pictures out of a screenshot.

use std::sync::Arc;

use serde_json::Value;

use super::super::identity::Picture;

pub(super) const LOOK_SCRIPT: &str = r#"
const [item, idA, senderA, fileA, textSel, loggedOut, nameSel, nameA, imageSel, tail] = arguments;
if (loggedOut && document.querySelector(loggedOut)) return { logged_out: true, items: [] };
const lastSegment = (v) => {
  const last = v.split(/[?#]/)[0].split('/').pop().trim();
  try { return decodeURIComponent(last); } catch (e) { return last; }
};
const all = Array.from(document.querySelectorAll(item));
return { logged_out: false, items: all.map((e, k) => {
  const t = textSel ? e.querySelector(textSel) : e;
  let filename = fileA ? e.getAttribute(fileA) : null;
  if (filename === null && nameSel) {
    const n = e.querySelector(nameSel);
    const v = n ? (nameA ? n.getAttribute(nameA) : n.textContent) : null;
    if (v) filename = lastSegment(v);
  }
  let picture = null, pending = false;
  if (imageSel && k >= all.length - tail) {
    const i = e.querySelector(imageSel);
    // Only a picture that has loaded and shows is worth photographing; one
    // still loading is pending.
    if (i) {
      const r = i.getBoundingClientRect();
      if ((i.tagName !== 'IMG' || (i.complete && i.naturalWidth > 0)) && r.width >= 8 && r.height >= 8) picture = i;
      else pending = true;
    }
  }
  return {
    id: idA ? e.getAttribute(idA) : null,
    sender: senderA ? e.getAttribute(senderA) : null,
    filename,
    text: t ? t.textContent : null,
    picture,
    pending,
  };
}) };
"#;

/// Scroll a loaded picture to the middle of its scroll boxes and the window,
/// and let two frames be painted; its size in CSS pixels if it is then
/// wholly visible, else null.
///
/// It does not call `img.decode()`: that decodes the picture at full size,
/// and a picture Chromium had not painted yet is then drawn from that
/// decode, not from the one at the size shown, so its pixels differ (by ±1
/// in a third of them) from another copy's. Whichever came first, the
/// first paint or the script, decided which pixels a screenshot got, and
/// two fresh copies of one picture were then told apart wrongly.
pub(super) const SHOW_PICTURE_SCRIPT: &str = r#"
const [e, done] = arguments;
Promise.resolve().then(() => {
  e.scrollIntoView({ block: 'center', inline: 'nearest' });
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const r = e.getBoundingClientRect();
    if (r.top < 0 || r.left < 0 || r.bottom > window.innerHeight || r.right > window.innerWidth) return done(null);
    // The window was checked; <body> and <html> pass their overflow to it.
    for (let p = e.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowY === 'visible' && s.overflowX === 'visible') continue;
      const q = p.getBoundingClientRect();
      if (r.top < q.top - 1 || r.bottom > q.bottom + 1 || r.left < q.left - 1 || r.right > q.right + 1) return done(null);
    }
    done([Math.round(r.width), Math.round(r.height), r.top, r.left]);
  }));
});
"#;

/// One item of what [`LOOK_SCRIPT`] returns.
#[derive(serde::Deserialize)]
pub(super) struct LookItem {
    pub(super) id: Option<String>,
    pub(super) sender: Option<String>,
    pub(super) filename: Option<String>,
    pub(super) text: Option<String>,
    /// A WebDriver element reference (`{"element-6066-…": id}`).
    pub(super) picture: Option<serde_json::Map<String, Value>>,
    /// A picture element that cannot be photographed yet.
    #[serde(default)]
    pub(super) pending: bool,
}

/// What [`LOOK_SCRIPT`] returns.
#[derive(serde::Deserialize)]
pub(super) struct Look {
    pub(super) logged_out: bool,
    pub(super) items: Vec<LookItem>,
}

/// Whether the page shows the logged-in marker and not the login page.
pub(super) const LOGGED_IN_SCRIPT: &str = r#"
const [inSel, outSel] = arguments;
return !!document.querySelector(inSel) && !(outSel && document.querySelector(outSel));
"#;

/// Only the pictures among the last this many messages are photographed: a
/// transmission's own bubbles are at the end of the chat.
pub(super) const PICTURE_TAIL: usize = 10;

/// Cut each rectangle (in the device's units: `window_width` wide) out of
/// the screenshot `png` as a picture; None for a rectangle off the screen.
pub(super) fn crop_pictures(
    png: &[u8],
    window_width: u32,
    rects: &[(usize, [f64; 4])],
) -> Vec<(usize, Option<Arc<Picture>>)> {
    let Ok(shot) = image::load_from_memory(png) else {
        return rects.iter().map(|(k, _)| (*k, None)).collect();
    };
    let scale = if window_width > 0 {
        shot.width() as f64 / window_width as f64
    } else {
        1.0
    };
    rects
        .iter()
        .map(|(k, [x, y, w, h])| {
            let (x, y) = ((x * scale).round(), (y * scale).round());
            let (w, h) = ((w * scale).round(), (h * scale).round());
            let inside = x >= 0.0
                && y >= 0.0
                && w >= 8.0
                && h >= 8.0
                && x + w <= shot.width() as f64
                && y + h <= shot.height() as f64;
            let p = inside.then(|| {
                Arc::new(Picture::new(
                    &shot.crop_imm(x as u32, y as u32, w as u32, h as u32),
                ))
            });
            (*k, p)
        })
        .collect()
}
