//! `datapackage.json`: a Frictionless Data Package describing every CSV of
//! a run folder or an analysis folder — its columns, their types, the
//! values a closed column allows, the missing-value marker (the empty
//! cell) and the keys — so that a program can check a dataset, and load
//! it typed, without reading docs/DATASET.md.
//!
//! Where the schema comes from, so that it cannot drift from the files:
//! - `sends.csv` and `trials.csv` are written from [`SendRow`] and
//!   [`TrialRow`]; their fields are listed here next to the closed
//!   vocabularies the reader checks ([`super::ROLES`], [`super::Verdict`],
//!   [`super::OUTCOMES`], [`crate::dataset::Failure::ALL`]), and a unit
//!   test serialises a row of each and compares the header with the
//!   schema, name by name.
//! - every other table (the designs' run tables, `items.csv`, the analysis
//!   tables) is written from formatted strings, so its types are read off
//!   the values that were written: a column is `integer`, `number`,
//!   `boolean` or `datetime` when every non-empty cell is one, else
//!   `string`.
//!
//! [`SendRow`]: super::SendRow
//! [`TrialRow`]: super::TrialRow

use std::path::Path;

use serde_json::{json, Value};

/// The package file's name.
pub const PACKAGE_FILE: &str = "datapackage.json";

/// A Table Schema field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Datetime,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Datetime => "datetime",
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    /// The values a closed column allows (empty: any).
    pub values: Vec<String>,
    /// Never empty.
    pub required: bool,
}

fn field(name: &str, kind: Kind, description: &str) -> Field {
    Field {
        name: name.into(),
        kind,
        description: description.into(),
        values: Vec::new(),
        required: false,
    }
}

fn closed(name: &str, values: &[&str], description: &str) -> Field {
    Field {
        values: values.iter().map(|v| v.to_string()).collect(),
        ..field(name, Kind::String, description)
    }
}

fn required(mut f: Field) -> Field {
    f.required = true;
    f
}

const TIME: &str = "RFC 3339 UTC with milliseconds";

/// The columns of sends.csv, in the order [`super::SendRow`] writes them.
pub fn send_fields() -> Vec<Field> {
    use Kind::*;
    let failures: Vec<&str> = crate::dataset::Failure::ALL
        .iter()
        .map(|f| f.code())
        .collect();
    vec![
        required(field("run_id", String, "the run folder's name")),
        required(field(
            "trial_id",
            String,
            "<experiment name>/<item or keyword>[/<parameter>]/r<replicate>",
        )),
        required(field(
            "send_id",
            String,
            "<trial_id>/<role> (retestN for expiry retests)",
        )),
        required(field("experiment", String, "the design (kind)")),
        field(
            "experiment_name",
            String,
            "the spec's name of the experiment",
        ),
        required(closed(
            "role",
            &super::ROLES,
            "the send's role in its trial",
        )),
        field("item_id", String, "corpus item (empty for texts)"),
        field("variant_id", String, "the variant sent"),
        closed(
            "content_kind",
            &["image", "document", "text"],
            "what was sent",
        ),
        field("label", String, "the item's or keyword's label"),
        field("topic", String, "the item's or keyword's topic"),
        field("transform", String, "transform spec (transform tests)"),
        field("md5", String, "MD5 of the file as sent"),
        field("phash", String, "64-bit DCT pHash, 16 hex digits (images)"),
        field(
            "phash_distance",
            Integer,
            "Hamming distance (bits) of phash to the original item's",
        ),
        closed("channel", &["direct", "group"], "the chat's kind"),
        field("chat", String, "peer alias or group name"),
        field("sender", String, "alias of the sending account"),
        closed("sender_region", &["intl", "china"], "the sender's region"),
        field(
            "receiver",
            String,
            "alias of the account whose client was watched",
        ),
        closed(
            "receiver_region",
            &["intl", "china"],
            "the receiver's region",
        ),
        field("scheduled_at", Datetime, TIME),
        field("sent_at", Datetime, TIME),
        field("observed_at", Datetime, TIME),
        field("offset_s", Number, "seconds after the trial's first send"),
        closed("outcome", &super::OUTCOMES, "what became of the send"),
        closed(
            "failure",
            &failures,
            "the harness failure, for error and some lost",
        ),
        field(
            "latency_ms",
            Integer,
            "observed_at minus sent_at, milliseconds",
        ),
        field(
            "attempt",
            Integer,
            "1 for the first try, then one per retry",
        ),
        field("planned_offset_s", Number, "the design's offset, seconds"),
        field(
            "sentinel_observed_at",
            Datetime,
            "when the sentinel showed on the receiver's side",
        ),
        field("error", String, "the harness's error message, for error"),
        field("nonce", String, "the attempt's nonce, 12 hex digits"),
        field(
            "match_distance",
            Integer,
            "images recognised by picture: pHash distance (bits) to the picture sent",
        ),
        field(
            "match_margin",
            Number,
            "images recognised by picture: how clearly the bubble was this probe",
        ),
    ]
}

/// The columns of trials.csv, in the order [`super::TrialRow`] writes them:
/// those it shares with sends.csv as there, then its own.
pub fn trial_fields() -> Vec<Field> {
    let sends = send_fields();
    let shared = |name: &str| {
        sends
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .expect("a sends.csv column")
    };
    // The first nine columns of trials.csv are sends.csv's.
    let mut out: Vec<Field> = super::TRIAL_COLUMNS[..9]
        .iter()
        .map(|n| shared(n))
        .collect();
    out.extend([
        field("parameter", Kind::String, "the design value of the trial"),
        required(closed(
            "verdict",
            &super::Verdict::names(),
            "the trial's verdict",
        )),
        closed(
            "seeded_outcome",
            &super::OUTCOMES,
            "final outcome of the test send",
        ),
        closed(
            "control_outcome",
            &super::OUTCOMES,
            "the control's (or prime's) outcome",
        ),
    ]);
    out
}

/// The type of a column from the values written in it.
pub fn infer_kind<'a>(values: impl IntoIterator<Item = &'a str>) -> Kind {
    let mut kinds = [true; 4]; // integer, number, boolean, datetime
    let mut any = false;
    for v in values.into_iter().filter(|v| !v.is_empty()) {
        any = true;
        // Leading zeros and long digit strings are identifiers, not numbers.
        let digits = v.trim_start_matches('-');
        let id_like = v.len() > 20
            || (digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."));
        kinds[0] &= !id_like && v.parse::<i64>().is_ok();
        kinds[1] &= !id_like && v.parse::<f64>().is_ok_and(f64::is_finite);
        kinds[2] &= super::parse_bool_cell(v).is_some();
        kinds[3] &= chrono::DateTime::parse_from_rfc3339(v).is_ok();
    }
    match kinds {
        _ if !any => Kind::String,
        [true, ..] => Kind::Integer,
        [_, true, ..] => Kind::Number,
        [_, _, true, _] => Kind::Boolean,
        [.., true] => Kind::Datetime,
        _ => Kind::String,
    }
}

/// The fields of a table, read off its header and the values of its rows.
pub fn infer_fields<R: AsRef<[String]>>(header: &[String], rows: &[R]) -> Vec<Field> {
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values = rows
                .iter()
                .filter_map(|r| r.as_ref().get(i).map(String::as_str));
            field(name, infer_kind(values), common_description(name))
        })
        .collect()
}

/// The header and rows of a CSV file.
fn read_table(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), csv::Error> {
    let mut rdr = csv::Reader::from_path(path)?;
    let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for r in rdr.records() {
        rows.push(r?.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// What the columns shared by many tables mean.
fn common_description(name: &str) -> &'static str {
    match name {
        "run_id" => "the run folder's name",
        "experiment_name" => "the spec's name of the experiment",
        "n" => "trials (or sends) counted",
        "k" => "of them, those with the event the rate counts",
        "rate" => "k / n",
        "ci_low" => "lower end of the 95% interval",
        "ci_high" => "upper end of the 95% interval",
        "p" => "p-value",
        "p_holm" => "p-value adjusted by Holm's method",
        _ => "",
    }
}

/// One CSV of the package.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The file's name in the folder.
    pub path: String,
    pub title: String,
    pub description: String,
    pub fields: Vec<Field>,
    pub primary_key: Vec<String>,
    /// (columns, other resource's name, its columns).
    pub foreign_keys: Vec<(Vec<String>, String, Vec<String>)>,
}

impl Resource {
    /// A table written from formatted values: its fields read off them.
    pub fn from_table<R: AsRef<[String]>>(
        file: &str,
        title: &str,
        description: &str,
        header: &[String],
        rows: &[R],
    ) -> Self {
        Resource {
            path: file.into(),
            title: title.into(),
            description: description.into(),
            fields: infer_fields(header, rows),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
        }
    }

    /// A CSV file in `dir`: its fields read off the file.
    pub fn from_file(dir: &Path, file: &str, title: &str, description: &str) -> csv::Result<Self> {
        let (header, rows) = read_table(&dir.join(file))?;
        Ok(Self::from_table(file, title, description, &header, &rows))
    }

    fn name(&self) -> String {
        resource_name(&self.path)
    }

    fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                let mut v = json!({"name": f.name, "type": f.kind.name()});
                if !f.description.is_empty() {
                    v["description"] = json!(f.description);
                }
                let mut c = serde_json::Map::new();
                if f.required {
                    c.insert("required".into(), json!(true));
                }
                if !f.values.is_empty() {
                    c.insert("enum".into(), json!(f.values));
                }
                if !c.is_empty() {
                    v["constraints"] = Value::Object(c);
                }
                v
            })
            .collect();
        let mut schema = json!({"fields": fields, "missingValues": [""]});
        if !self.primary_key.is_empty() {
            schema["primaryKey"] = json!(self.primary_key);
        }
        if !self.foreign_keys.is_empty() {
            schema["foreignKeys"] = self
                .foreign_keys
                .iter()
                .map(|(cols, res, theirs)| {
                    json!({"fields": cols, "reference": {"resource": resource_name(res), "fields": theirs}})
                })
                .collect();
        }
        json!({
            "name": self.name(),
            "path": self.path,
            "profile": "tabular-data-resource",
            "title": self.title,
            "description": self.description,
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "dialect": {"delimiter": ",", "header": true, "quoteChar": "\""},
            "schema": schema,
        })
    }
}

/// A Data Package name: lower case letters, digits and `-._`.
fn package_name(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn resource_name(file: &str) -> String {
    package_name(file.trim_end_matches(".csv"))
}

/// The sends.csv and trials.csv resources of a run folder. The foreign key
/// from sends to trials holds only when every trial has finished (an
/// interrupted run has sends of trials not yet in trials.csv), so it is
/// declared only for a complete run.
pub fn run_resources(complete: bool) -> [Resource; 2] {
    let key = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    [
        Resource {
            path: "sends.csv".into(),
            title: "Sends".into(),
            description: "One row per attempt of a send (docs/DATASET.md).".into(),
            fields: send_fields(),
            primary_key: key(&["run_id", "send_id", "attempt"]),
            foreign_keys: if complete {
                vec![(
                    key(&["run_id", "trial_id"]),
                    "trials.csv".into(),
                    key(&["run_id", "trial_id"]),
                )]
            } else {
                Vec::new()
            },
        },
        Resource {
            path: "trials.csv".into(),
            title: "Trials".into(),
            description: "One row per finished trial, with its verdict (docs/DATASET.md).".into(),
            fields: trial_fields(),
            primary_key: key(&["run_id", "trial_id"]),
            foreign_keys: Vec::new(),
        },
    ]
}

/// Write `datapackage.json` into `dir` (atomically) for `resources`.
pub fn write(dir: &Path, name: &str, title: &str, resources: &[Resource]) -> std::io::Result<()> {
    let package = json!({
        "profile": "tabular-data-package",
        "name": package_name(name),
        "title": title,
        "created": crate::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "contributors": [{"title": format!("chatprobe {}", env!("CARGO_PKG_VERSION")), "role": "author"}],
        "resources": resources.iter().map(Resource::to_json).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec_pretty(&package).map_err(std::io::Error::other)?;
    crate::fsutil::atomic_write_bytes(&dir.join(PACKAGE_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of<T: serde::Serialize>(row: &T) -> Vec<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        text.lines()
            .next()
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect()
    }

    fn names(fields: &[Field]) -> Vec<String> {
        fields.iter().map(|f| f.name.clone()).collect()
    }

    #[test]
    fn the_schemas_name_the_columns_the_rows_write_in_order() {
        let send: super::super::SendRow = serde_json::from_value(json!({
            "run_id": "", "trial_id": "", "send_id": "", "experiment": "",
            "experiment_name": "", "role": "test", "item_id": "", "variant_id": "",
            "content_kind": "", "label": "", "topic": "", "transform": "", "md5": "",
            "phash": "", "phash_distance": null, "channel": "", "chat": "", "sender": "",
            "sender_region": "", "receiver": "", "receiver_region": "", "scheduled_at": "",
            "sent_at": "", "observed_at": "", "offset_s": null, "outcome": null,
            "failure": "", "latency_ms": null, "attempt": null
        }))
        .unwrap();
        assert_eq!(header_of(&send), names(&send_fields()));
        let trial: super::super::TrialRow = serde_json::from_value(json!({
            "run_id": "", "trial_id": "", "experiment": "", "experiment_name": "",
            "item_id": "", "label": "", "content_kind": "", "topic": "", "channel": "",
            "parameter": "", "verdict": "inconclusive", "seeded_outcome": null, "control_outcome": null
        }))
        .unwrap();
        assert_eq!(header_of(&trial), names(&trial_fields()));
    }

    #[test]
    fn failure_codes_are_what_serde_writes_and_distinct() {
        let all = crate::dataset::Failure::ALL;
        for f in all {
            assert_eq!(serde_json::to_value(f).unwrap(), json!(f.code()));
        }
        let mut codes: Vec<&str> = all.iter().map(|f| f.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn kinds_are_read_off_the_values() {
        assert_eq!(infer_kind(["1", "", "-3"]), Kind::Integer);
        assert_eq!(infer_kind(["1", "2.5"]), Kind::Number);
        assert_eq!(infer_kind(["TRUE", "FALSE", ""]), Kind::Boolean);
        assert_eq!(infer_kind(["2026-12-05T06:31:11.123Z"]), Kind::Datetime);
        assert_eq!(
            infer_kind(["007"]),
            Kind::String,
            "an id with a leading zero"
        );
        assert_eq!(infer_kind(["inf"]), Kind::String);
        assert_eq!(infer_kind(["a", "1"]), Kind::String);
        assert_eq!(infer_kind([""]), Kind::String);
        assert_eq!(infer_kind(["0", "0.5"]), Kind::Number);
    }
}
