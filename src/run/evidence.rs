//! What a resume checks before it trusts a run folder, and what
//! `run --resume DIR --repair` does when the check fails.
//!
//! A resume goes on only from a journal whose every record is whole (each
//! carries its checksum, see [`super::journal`]), that still holds every
//! outcome sends.csv shows, and a plan.csv that is the plan of the run's
//! spec (run.json holds the SHA-256 of its first steps; the steps adaptive
//! experiments added must be steps they would add). Anything else is
//! refused, exit 2, naming the file, the line and the way forward.
//!
//! `--repair` keeps the journal's records before the first damaged one.
//! From the whole records after it, it keeps what a run decided (starts,
//! stops, files made, intents, trials given up) and drops what it observed
//! (outcomes, sends found not sent): every send after the damage is then
//! an intent without an outcome, and the resume settles it by looking at
//! the chats, never by sending. A send whose intent itself may be the
//! damaged record (the next send of every trial that was running or could
//! have started) gets its intent back: nonces derive from the run, the send
//! and the attempt, so it is the intent it went out with. The damaged
//! journal is kept beside the new one, plan.csv is rewritten from the spec
//! when it is not the run's, and run.json's `repairs` says what was done.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::journal::{self, Record, Scan};
use super::state::{RunState, TrialStatus};
use crate::dataset::manifest::{self, RunManifest};
use crate::error::InputError;
use crate::probe::plan::{Content, Plan, Trial};
use crate::probe::spec::Spec;

/// The plan file of a run folder.
pub const PLAN_FILE: &str = "plan.csv";

/// What a resume found, checked, and (with `--repair`) will mend.
pub struct Checked {
    /// The repair to apply once the folder is open (`--repair` only, and
    /// only when something needed one).
    pub repair: Option<Repair>,
}

/// A repair, computed before anything is written.
pub struct Repair {
    /// The journal to write (none: the journal was whole).
    journal: Option<Vec<Record>>,
    /// plan.csv to write (none: it is the run's).
    plan: Option<Vec<u8>>,
    /// What run.json records.
    pub note: manifest::Repair,
}

/// SHA-256 of a plan as plan.csv holds it.
pub fn plan_sha256(plan: &Plan) -> String {
    crate::corpus::hash::sha256_hex(&plan_bytes(plan))
}

fn plan_bytes(plan: &Plan) -> Vec<u8> {
    let mut b = Vec::new();
    plan.write_csv(&mut b).expect("writing to memory");
    b
}

/// Check the run folder `dir` before a resume: its journal, that journal
/// against sends.csv, and plan.csv against `base` (the plan the spec gives).
/// With `repair`, what fails is mended instead (see the module).
pub fn check(
    dir: &Path,
    m: &RunManifest,
    spec: &Spec,
    base: &Plan,
    repair: bool,
) -> Result<Checked, InputError> {
    let retries = spec.limits.retries;
    let path = dir.join(journal::JOURNAL_FILE);
    let scan = if path.exists() {
        journal::scan(dir)?
    } else {
        Scan {
            path: path.clone(),
            lines: Vec::new(),
        }
    };
    let damage = scan.first_damage().map(|(i, d)| (i, d.clone()));
    // The journal as the run will read it (repaired or whole), or the
    // refusal of a damaged one.
    let (records, journal_repair) = match (&damage, repair) {
        (None, _) => (scan.records().cloned().collect::<Vec<_>>(), None),
        (Some(_), false) => return Err(journal::read(dir).expect_err("a damaged journal")),
        (Some((i, d)), true) => {
            let r = repair_journal(&scan, *i, d, m, spec, base)?;
            (r.0.clone(), Some(r))
        }
    };
    // Every outcome sends.csv shows must be in a whole record of the
    // journal. A repair settles again what it dropped: there, a send the
    // journal still knows of (an intent or outcome after a damaged
    // record, or an intent given back) is enough.
    let known: HashSet<(String, String)> = match &journal_repair {
        None => scan
            .records()
            .filter_map(|r| match r {
                Record::Outcome {
                    send_id, attempt, ..
                } => Some((send_id.clone(), attempt.to_string())),
                _ => None,
            })
            .collect(),
        Some((repaired, _)) => scan
            .records()
            .chain(repaired)
            .filter_map(|r| match r {
                Record::Outcome {
                    send_id, attempt, ..
                }
                | Record::Intent {
                    send_id, attempt, ..
                } => Some((send_id.clone(), attempt.to_string())),
                _ => None,
            })
            .collect(),
    };
    journal_covers_dataset(dir, &path, &known, scan.lines.is_empty())?;
    // plan.csv: the first steps exactly as the run started with them, the
    // rest steps the adaptive experiments would add.
    let mut st = RunState::new(retries);
    for r in &records {
        st.apply(r);
    }
    let mut grown = base.clone();
    grown.grow(|x, t| st.finished_verdict(x, t));
    let base_bytes = plan_bytes(base);
    let base_sha = crate::corpus::hash::sha256_hex(&base_bytes);
    if !m.plan_sha256.is_empty() && m.plan_sha256 != base_sha {
        return Err(InputError::new(
            dir.join(manifest::RUN_FILE),
            "this chatprobe plans the run's spec differently from the one that started it (run.json `plan_sha256`)",
        )
        .key("plan_sha256")
        .hint(format!(
            "resume with chatprobe {} (run.json `version`), or start a new run",
            m.version
        )));
    }
    let plan_path = dir.join(PLAN_FILE);
    // A run made before plans were hashed wrote plan.csv as that version
    // did (its columns may differ): it is not compared.
    let plan_problem = if m.plan_sha256.is_empty() {
        None
    } else {
        plan_differs(&plan_path, &base_bytes, &grown)
    };
    let plan_fix = match (plan_problem, repair) {
        (None, _) => None,
        (Some(e), false) => {
            return Err(e.hint(format!(
                "plan.csv is evidence of what the run meant to send; `chatprobe run --resume {} --repair` rewrites it from the spec (unchanged since the run started, so the plan is the same)",
                dir.display()
            )))
        }
        (Some(e), true) => Some((plan_bytes(&grown), e.message)),
    };
    if journal_repair.is_none() && plan_fix.is_none() {
        return Ok(Checked { repair: None });
    }
    let mut note = manifest::Repair {
        at: super::state::rfc(Some(crate::clock::now())),
        ..manifest::Repair::default()
    };
    let journal = journal_repair.map(|(records, n)| {
        note.journal_line = n.journal_line;
        note.damage = n.damage;
        note.records_kept = n.records_kept;
        note.records_dropped = n.records_dropped;
        note.sends_to_settle = n.sends_to_settle;
        note.intents_restored = n.intents_restored;
        records
    });
    let plan = plan_fix.map(|(bytes, why)| {
        note.plan_rewritten = Some(why);
        bytes
    });
    Ok(Checked {
        repair: Some(Repair {
            journal,
            plan,
            note,
        }),
    })
}

/// Why plan.csv is not the run's plan, if it is not.
fn plan_differs(path: &Path, base: &[u8], grown: &Plan) -> Option<InputError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Some(InputError::new(
                path,
                format!("the run's plan is not there: {e}"),
            ))
        }
    };
    if !bytes.starts_with(base) {
        // Name the first line that differs.
        let line = bytes
            .split(|b| *b == b'\n')
            .zip(base.split(|b| *b == b'\n'))
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Some(
            InputError::new(
                path,
                "plan.csv is not the plan this run started with (its first steps differ from the spec's)",
            )
            .line(line as u64 + 1),
        );
    }
    // Rows after the first steps: steps adaptive experiments add, compared
    // without their `order` (added steps are numbered as they come).
    let key = |r: &csv::StringRecord| r.iter().skip(1).collect::<Vec<_>>().join("\u{1f}");
    let grown = plan_bytes(grown);
    let mut want = csv::Reader::from_reader(&grown[..]);
    let known: HashSet<String> = want.records().flatten().map(|r| key(&r)).collect();
    let base_rows = base
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..]);
    for (i, r) in rd.records().enumerate().skip(base_rows) {
        let line = i as u64 + 1;
        let bad = match r {
            Err(e) => Some(format!("a malformed row: {e}")),
            Ok(r) if !known.contains(&key(&r)) => Some(
                "a row that is no step of this run's experiments (changed, or added by hand)"
                    .to_string(),
            ),
            Ok(_) => None,
        };
        if let Some(why) = bad {
            return Some(InputError::new(path, format!("plan.csv holds {why}")).line(line));
        }
    }
    None
}

/// Refuse to resume a run whose journal has lost what its dataset shows:
/// every row of sends.csv (a send's attempt with its outcome) was written
/// from a journal record, so a row without one means the journal was
/// emptied, cut or replaced. Resuming from it would send those probes
/// again (an emptied journal resumed as a new run sent 11 twice).
fn journal_covers_dataset(
    dir: &Path,
    path: &Path,
    journaled: &HashSet<(String, String)>,
    empty: bool,
) -> Result<(), InputError> {
    let sends = dir.join("sends.csv");
    let Ok(mut rd) = csv::Reader::from_path(&sends) else {
        return Ok(());
    };
    let head = rd.headers().cloned().unwrap_or_default();
    let col = |name: &str| head.iter().position(|h| h == name);
    let (Some(id), Some(attempt)) = (col("send_id"), col("attempt")) else {
        return Err(InputError::new(&sends, "no send_id and attempt columns")
            .hint("sends.csv is rebuilt from the journal: delete it and resume"));
    };
    let rows: Vec<(String, String)> = rd
        .records()
        .flatten()
        .map(|r| (r[id].to_string(), r[attempt].to_string()))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let missing: Vec<&(String, String)> = rows.iter().filter(|r| !journaled.contains(*r)).collect();
    if let Some((first, _)) = missing.first() {
        let what = if empty {
            "is empty or missing".to_string()
        } else {
            format!("has lost records (no outcome for `{first}`)")
        };
        return Err(InputError::new(
            path,
            format!(
                "the journal {what}, but sends.csv records {} of its sends' outcomes ({} in all): resuming would send them again",
                missing.len(),
                rows.len()
            ),
        )
        .hint("restore journal.jsonl from a copy of the run folder; without it this run cannot be resumed (start a new run)"));
    }
    Ok(())
}

/// The journal part of a repair.
#[derive(Default)]
struct JournalNote {
    journal_line: Option<u64>,
    damage: String,
    records_kept: usize,
    records_dropped: usize,
    sends_to_settle: Vec<String>,
    intents_restored: Vec<String>,
}

/// The repaired journal for a scan whose first damaged line is `i`.
fn repair_journal(
    scan: &Scan,
    i: usize,
    damage: &journal::Damage,
    m: &RunManifest,
    spec: &Spec,
    base: &Plan,
) -> Result<(Vec<Record>, JournalNote), InputError> {
    let dir = scan.path.parent().unwrap_or(Path::new("."));
    let mut kept: Vec<Record> = scan.lines[..i]
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let mut note = JournalNote {
        journal_line: Some(scan.lines[i].0),
        damage: damage.to_string(),
        records_kept: kept.len(),
        ..JournalNote::default()
    };
    let mut observed_after: Vec<(String, u32)> = Vec::new();
    for (_, r) in &scan.lines[i + 1..] {
        match r {
            Ok(Record::Outcome {
                send_id, attempt, ..
            })
            | Ok(Record::NotSent {
                send_id, attempt, ..
            }) => {
                note.records_dropped += 1;
                observed_after.push((send_id.clone(), *attempt));
            }
            Ok(r) => {
                note.records_kept += 1;
                kept.push(r.clone());
            }
            Err(_) => note.records_dropped += 1,
        }
    }
    note.records_dropped += 1; // the damaged record itself
    let mut st = RunState::new(spec.limits.retries);
    for r in &kept {
        st.apply(r);
    }
    let mut plan = base.clone();
    plan.grow(|x, t| st.finished_verdict(x, t));
    // A file whose record is lost is made known again from the file itself.
    let remake = |st: &mut RunState, kept: &mut Vec<Record>, t: &Trial, s: usize| {
        let content = &t.sends[s].content;
        let Some(key) = super::files::file_key(content) else {
            return Ok(true);
        };
        if st.files.contains_key(&(t.trial_id.clone(), key.clone())) {
            return Ok(true);
        }
        let r =
            super::files::remade_record(dir, spec, &m.run_id, t, &key, content).map_err(|e| {
                InputError::new(
                    &scan.path,
                    format!(
                        "making the record of `{key}` of {} again: {e:#}",
                        t.trial_id
                    ),
                )
            })?;
        Ok::<bool, InputError>(match r {
            Some(r) => {
                st.apply(&r);
                kept.push(r);
                true
            }
            None => false,
        })
    };
    for t in &plan.trials {
        for (s, send) in t.sends.iter().enumerate() {
            if st.attempts.contains_key(&send.send_id) && !remake(&mut st, &mut kept, t, s)? {
                return Err(InputError::new(
                    &scan.path,
                    format!("{} sent a file that is neither in the journal nor in the run folder's files/", send.send_id),
                )
                .line(scan.lines[i].0)
                .hint("restore journal.jsonl and files/ from a copy of the run folder"));
            }
        }
    }
    // The sends whose intent may be the damaged record: the next send of a
    // trial that was running, of a trial that could have started (up to
    // `parallel_pairs` past the last one started), and of any send a whole
    // record after the damage observed.
    let observed: HashSet<&str> = observed_after.iter().map(|(s, _)| s.as_str()).collect();
    let last_started = plan.trials.iter().rposition(|t| st.started(t));
    let pairs = spec.limits.parallel_pairs as usize;
    let reach = last_started.map_or(pairs, |k| k + pairs + 1);
    let mut restored = Vec::new();
    for (k, t) in plan.trials.iter().enumerate() {
        match st.trial_status(t) {
            TrialStatus::Pending(s, _) => note.sends_to_settle.push(t.sends[s].send_id.clone()),
            TrialStatus::Next(s, attempt) => {
                let send = &t.sends[s];
                let maybe = st.started(t) || k < reach || observed.contains(send.send_id.as_str());
                if !maybe {
                    continue;
                }
                if !remake(&mut st, &mut kept, t, s)? {
                    // Its file was never made, so it was never sent.
                    continue;
                }
                let key = super::files::file_key(&send.content);
                let nonce = super::dispatch::new_nonce(
                    &m.run_id,
                    &send.send_id,
                    attempt,
                    st.remade(&send.send_id, attempt),
                );
                let text = match &send.content {
                    Content::Text(words) => Some(crate::platform::identity::tagged(words, &nonce)),
                    _ => None,
                };
                let now = crate::clock::now();
                restored.push(Record::Intent {
                    send_id: send.send_id.clone(),
                    trial_id: t.trial_id.clone(),
                    attempt,
                    at: now,
                    scheduled_at: now,
                    file: key,
                    text,
                    nonce,
                });
                note.sends_to_settle.push(send.send_id.clone());
                note.intents_restored.push(send.send_id.clone());
            }
            TrialStatus::Done => {}
        }
    }
    kept.extend(restored);
    Ok((kept, note))
}

/// Carry out a repair on the open run folder `dir`: keep the damaged
/// journal beside the new one, write the new one and plan.csv, drop the
/// datasets projected from the old journal (rebuilt at the first write),
/// and record what was done in `m` (written to run.json at once).
pub fn apply(dir: &Path, r: &Repair, m: &mut RunManifest) -> std::io::Result<()> {
    let mut note = r.note.clone();
    if let Some(records) = &r.journal {
        let path = dir.join(journal::JOURNAL_FILE);
        let stamp = crate::clock::now().format("%Y%m%dT%H%M%SZ");
        let copy: PathBuf = dir.join(format!("journal.damaged-{stamp}.jsonl"));
        if path.exists() {
            std::fs::copy(&path, &copy)?;
            std::fs::File::open(&copy)?.sync_all()?;
            note.damaged_copy = copy.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        let mut bytes = Vec::new();
        for rec in records {
            bytes.extend(journal::line_of(rec).map_err(std::io::Error::other)?);
            bytes.push(b'\n');
        }
        crate::fsutil::atomic_write_bytes(&path, &bytes)?;
        for projected in ["sends.csv", "trials.csv"] {
            match std::fs::remove_file(dir.join(projected)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    if let Some(plan) = &r.plan {
        crate::fsutil::atomic_write_bytes(&dir.join(PLAN_FILE), plan)?;
    }
    m.repairs.push(note);
    crate::fsutil::atomic_write_bytes(
        &dir.join(manifest::RUN_FILE),
        &serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?,
    )
}
