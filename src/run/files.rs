//! The probe files of a run: made once per trial and key (a fresh copy
//! whose MD5 no earlier run sent, a transform of it, or the original),
//! journaled before any send names them, and staged under a name unique to
//! each attempt (the marker the receiver's chat is searched for).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::journal::{Journal, Record};
use super::state::RunState;
use super::{ledger, record, Ctx};
use crate::corpus::hash::{Hash64, PerceptualHasher};
use crate::corpus::transform::{self, Transform};
use crate::corpus::{Format, ItemKind};
use crate::error::InputError;
use crate::platform::{Payload, Transmission};
use crate::probe::plan::{Content, Trial};

/// The transmission of attempt `attempt` of send `s` (its intent is in the state).
pub(super) fn transmission(
    ctx: &Ctx,
    st: &RunState,
    t: &Trial,
    s: usize,
    attempt: u32,
    sentinel: bool,
) -> anyhow::Result<Transmission> {
    let send = &t.sends[s];
    let a = st
        .attempts
        .get(&send.send_id)
        .and_then(|v| v.iter().find(|a| a.attempt == attempt))
        .ok_or_else(|| anyhow::anyhow!("no intent for {} attempt {attempt}", send.send_id))?;
    let payload = match (&a.file, &a.text) {
        (_, Some(text)) => Payload::Text(text.clone()),
        (Some(k), None) => {
            let f = st
                .files
                .get(&(t.trial_id.clone(), k.clone()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "journal names file `{k}` of {} but never made it",
                        t.trial_id
                    )
                })?;
            Payload::File(stage(&ctx.dir, &f.path, &a.nonce)?)
        }
        (None, None) => anyhow::bail!("intent of {} has neither file nor text", send.send_id),
    };
    Ok(Transmission {
        from: send.chat.from.clone(),
        to: send.chat.target.clone(),
        observer: send.chat.observer.clone(),
        payload,
        sentinel,
    })
}

/// The copy of a probe file sent by one attempt, under a name no other
/// attempt uses (the marker the receiver's chat is searched for). Same bytes,
/// so the same MD5.
fn stage(dir: &Path, rel: &str, nonce: &str) -> anyhow::Result<PathBuf> {
    let src = dir.join(rel);
    let sent = dir.join("files/sent");
    let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("probe");
    let ext = src.extension().and_then(|s| s.to_str()).unwrap_or("bin");
    let dst = sent.join(format!("{stem}-{nonce}.{ext}"));
    if !dst.is_file() {
        std::fs::create_dir_all(&sent)?;
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(dst)
}

fn seed_of(run_id: &str, trial: &str, key: &str, round: u32) -> u64 {
    let h = crate::corpus::hash::sha256_hex(format!("{run_id}|{trial}|{key}|{round}").as_bytes());
    u64::from_str_radix(&h[..16], 16).expect("hex")
}

/// A fresh copy of `orig` whose MD5 the ledger has never seen: seeds are
/// drawn from `seed(round)` for rounds 0, 1, … until one gives an unsent
/// MD5; after 32 sent ones it gives up. Returns bytes, format and seed.
pub fn fresh_copy(
    ledger: &ledger::Ledger,
    path: &Path,
    orig: &[u8],
    format: Format,
    seed: impl Fn(u32) -> u64,
) -> anyhow::Result<(Vec<u8>, Format, u64)> {
    for round in 0..32 {
        let s = seed(round);
        let (b, f) = transform::apply(Transform::Fresh, path, orig, format, s)?;
        if !ledger.contains(&crate::corpus::hash::md5_hex(&b)) {
            return Ok((b, f, s));
        }
    }
    anyhow::bail!(
        "32 fresh copies of {} were all in the ledger {}: refusing to send a copy the platform may have seen",
        path.display(),
        ledger.path().display()
    )
}

/// Where a run keeps the probe file of variant `variant_id`.
fn file_path(variant_id: &str, format: Format) -> String {
    format!(
        "files/{}.{}",
        variant_id.replace([':', '/'], "_"),
        format.extension()
    )
}

/// The journal record of a probe file made for trial `t`.
#[allow(clippy::too_many_arguments)]
fn file_record(
    hasher: &PerceptualHasher,
    t: &Trial,
    key: &str,
    rel: String,
    bytes: &[u8],
    format: Format,
    item: &crate::probe::items::CorpusItem,
    transform: String,
    variant_id: String,
) -> anyhow::Result<Record> {
    let (phash, distance) = if format.kind() == ItemKind::Image {
        let h = hasher.hash_bytes(Path::new(&rel), bytes)?;
        let d = item
            .index
            .phash
            .as_deref()
            .and_then(Hash64::parse)
            .map(|o| o.distance(h.phash));
        (Some(format!("{:016x}", h.phash.0)), d)
    } else {
        (None, None)
    };
    Ok(Record::File {
        trial_id: t.trial_id.clone(),
        key: key.to_string(),
        path: rel,
        md5: crate::corpus::hash::md5_hex(bytes),
        phash,
        phash_distance: distance,
        transform,
        variant_id,
    })
}

/// The record of file `key` of trial `t` made again from the file itself
/// (its record lost in a damaged journal): the file's name follows from
/// the run, the trial and the key (a fresh copy's seed is the first of the
/// seeds `prepare_file` draws whose file is there). `None`: no such file,
/// so it was never made.
pub(super) fn remade_record(
    dir: &Path,
    spec: &crate::probe::spec::Spec,
    run_id: &str,
    t: &Trial,
    key: &str,
    content: &Content,
) -> anyhow::Result<Option<Record>> {
    let Some(item) = t.item.as_ref() else {
        return Ok(None);
    };
    let found = |vid: &str| -> Option<(String, Format)> {
        [
            Format::Png,
            Format::Jpeg,
            Format::Pdf,
            Format::Docx,
            Format::Txt,
        ]
        .into_iter()
        .map(|f| (file_path(vid, f), f))
        .find(|(rel, _)| dir.join(rel).is_file())
    };
    let (vid, transform, item) = match content {
        Content::Text(_) => return Ok(None),
        Content::Fresh(_) => {
            let Some(vid) = (0..32)
                .map(|round| {
                    crate::corpus::variants::variant_id(
                        &item.item.id,
                        Transform::Fresh,
                        seed_of(run_id, &t.trial_id, key, round),
                    )
                })
                .find(|vid| found(vid).is_some())
            else {
                return Ok(None);
            };
            (vid, String::new(), item)
        }
        Content::Transformed(c, tr) => {
            let Some(Record::File { variant_id, .. }) = remade_record(
                dir,
                spec,
                run_id,
                t,
                &format!("fresh:{c}"),
                &Content::Fresh(*c),
            )?
            else {
                return Ok(None);
            };
            (format!("{variant_id}--{}", tr.slug()), tr.to_string(), item)
        }
        Content::Original(id) => {
            let it = if &item.item.id == id {
                item
            } else {
                match spec.items.iter().find(|i| &i.item.id == id) {
                    Some(i) => i,
                    None => return Ok(None),
                }
            };
            (id.clone(), String::new(), it)
        }
    };
    let Some((rel, format)) = found(&vid) else {
        return Ok(None);
    };
    let bytes = std::fs::read(dir.join(&rel)).with_context(|| format!("reading {rel}"))?;
    file_record(
        &PerceptualHasher::new(),
        t,
        key,
        rel,
        &bytes,
        format,
        item,
        transform,
        vid,
    )
    .map(Some)
}

/// The journal's key of the file a send of `content` sends (none: a text).
pub(super) fn file_key(content: &Content) -> Option<String> {
    match content {
        Content::Text(_) => None,
        other => Some(other.describe()),
    }
}

/// Make the file `content` of trial `t` (once per trial and key), journal
/// it, and return its key; `None` for texts.
pub(super) fn prepare_file(
    ctx: &Ctx,
    st: &mut RunState,
    jr: &mut Journal,
    ledger: &mut ledger::Ledger,
    hasher: &PerceptualHasher,
    t: &Trial,
    content: &Content,
) -> anyhow::Result<Option<String>> {
    let Some(key) = file_key(content) else {
        return Ok(None);
    };
    if st.files.contains_key(&(t.trial_id.clone(), key.clone())) {
        return Ok(Some(key));
    }
    let corpus = &ctx.spec.corpus;
    let (bytes, format, item, transform, variant_id) = match content {
        Content::Fresh(_) => {
            let item = t.item.as_ref().expect("file trials have an item");
            let path = crate::corpus::entry_path(corpus, &item.item.path)?;
            let orig = crate::corpus::read_file(&path)?;
            let format = Format::from_path(&path)
                .ok_or_else(|| InputError::new(&path, "unsupported file type"))?;
            let (b, f, seed) = fresh_copy(ledger, &path, &orig, format, |round| {
                seed_of(&ctx.run_id, &t.trial_id, &key, round)
            })?;
            let vid = crate::corpus::variants::variant_id(&item.item.id, Transform::Fresh, seed);
            (b, f, item, String::new(), vid)
        }
        Content::Transformed(c, tr) => {
            let base_key = format!("fresh:{c}");
            prepare_file(ctx, st, jr, ledger, hasher, t, &Content::Fresh(*c))?;
            let base = st.files[&(t.trial_id.clone(), base_key)].clone();
            let path = ctx.dir.join(&base.path);
            let b = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let format = Format::from_path(&path).expect("made by chatprobe");
            let seed = seed_of(&ctx.run_id, &t.trial_id, &key, 0);
            let (out, f) = transform::apply(*tr, &path, &b, format, seed)?;
            let item = t.item.as_ref().expect("file trials have an item");
            let vid = format!("{}--{}", base.variant_id, tr.slug());
            (out, f, item, tr.to_string(), vid)
        }
        Content::Original(id) => {
            let item = if t.item.as_ref().is_some_and(|i| &i.item.id == id) {
                t.item.as_ref().expect("checked")
            } else {
                ctx.spec
                    .items
                    .iter()
                    .find(|i| &i.item.id == id)
                    .expect("the spec checked the corpus has it")
            };
            let path = crate::corpus::entry_path(corpus, &item.item.path)?;
            let b = crate::corpus::read_file(&path)?;
            let format = Format::from_path(&path)
                .ok_or_else(|| InputError::new(&path, "unsupported file type"))?;
            (b, format, item, String::new(), id.clone())
        }
        Content::Text(_) => unreachable!(),
    };
    let rel = file_path(&variant_id, format);
    let full = ctx.dir.join(&rel);
    crate::fsutil::atomic_write_bytes(&full, &bytes)
        .with_context(|| format!("writing {}", full.display()))?;
    let r = file_record(
        hasher, t, &key, rel, &bytes, format, item, transform, variant_id,
    )?;
    record(jr, st, &r)?;
    Ok(Some(key))
}
