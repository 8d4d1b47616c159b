//! Reading the TOML input files (accounts, policies, specs, profiles) with
//! errors that name the file, the line and the key, as every input error must.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::InputError;

/// Whether a key path names a secret (its value must never be printed).
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_lowercase();
    last == "password" || last.contains("secret") || last.contains("token")
}

/// Read and parse a TOML file into `T`. Unknown keys are errors when `T`
/// says `deny_unknown_fields`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(path, format!("cannot read: {e}")).hint("check the path"))?;
    parse(path, &text)
}

/// Parse TOML text read from `path` into `T`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InputError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != "." && !key.is_empty()).then_some(key);
        toml_error(path, text, e.inner(), key)
    })
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<String>) -> InputError {
    // A message about a secret's key may quote its value (`invalid type:
    // integer `123456`…`): say what is wrong without it.
    let secret = key.as_deref().is_some_and(is_secret_key);
    let message = if secret {
        "invalid value (not shown: it is a secret); write it as a quoted string".to_string()
    } else {
        e.message().trim().to_string()
    };
    let mut err = InputError::new(path, message);
    if let Some(span) = e.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() as u64 + 1;
        err = err.line(line);
    }
    if let Some(k) = key {
        err = err.key(k);
    }
    err
}

/// A numeric key's declared type and range: every file kind declares its
/// keys once ([`Declared`] tables beside its loader), and [`check_ranges`]
/// refuses a value outside, naming the file, line, key and range. The same
/// tables generate the bad-input tests, so a key is tested when declared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// A finite number from `min` to `max`; `open_min`: above `min`, not
    /// equal; `open_max`: below `max`.
    Float {
        /// Lowest.
        min: f64,
        /// Highest.
        max: f64,
        /// `min` itself excluded.
        open_min: bool,
        /// `max` itself excluded.
        open_max: bool,
    },
    /// A whole number from `min` to `max`.
    Int {
        /// Lowest.
        min: i64,
        /// Highest.
        max: i64,
    },
}

impl Range {
    /// `[min, max]`.
    pub const fn float(min: f64, max: f64) -> Range {
        Range::Float {
            min,
            max,
            open_min: false,
            open_max: false,
        }
    }

    /// `(min, max]`.
    pub const fn above(min: f64, max: f64) -> Range {
        Range::Float {
            min,
            max,
            open_min: true,
            open_max: false,
        }
    }

    /// `[min, max)`.
    pub const fn below(min: f64, max: f64) -> Range {
        Range::Float {
            min,
            max,
            open_min: false,
            open_max: true,
        }
    }

    /// `min..=max`, whole numbers.
    pub const fn int(min: i64, max: i64) -> Range {
        Range::Int { min, max }
    }

    /// Whether `v` is in range (`None`: not a number of the right type).
    fn holds(&self, v: &toml::Value) -> Option<bool> {
        match (*self, v) {
            (
                Range::Float {
                    min,
                    max,
                    open_min,
                    open_max,
                },
                toml::Value::Float(_) | toml::Value::Integer(_),
            ) => {
                let x = v.as_float().or(v.as_integer().map(|i| i as f64))?;
                Some(
                    x.is_finite()
                        && (x > min || (!open_min && x == min))
                        && (x < max || (!open_max && x == max)),
                )
            }
            (Range::Int { min, max }, toml::Value::Integer(i)) => Some((min..=max).contains(i)),
            _ => None,
        }
    }

    /// In words, for messages and docs.
    pub fn describe(&self) -> String {
        match *self {
            Range::Float {
                min,
                max,
                open_min,
                open_max,
            } => match (open_min, open_max) {
                (false, false) => format!("a finite number from {min} to {max}"),
                (true, false) => format!("a finite number above {min}, at most {max}"),
                (false, true) => format!("a finite number from {min} to under {max}"),
                (true, true) => format!("a finite number above {min} and under {max}"),
            },
            Range::Int { min, max } => format!("a whole number from {min} to {max}"),
        }
    }

    /// Values just outside the range, and values of no number (for the
    /// generated bad-input tests).
    pub fn outside(&self) -> Vec<toml::Value> {
        use toml::Value::{Float, Integer, String as S};
        let mut v = match *self {
            Range::Float {
                min,
                max,
                open_min,
                open_max,
            } => {
                let step = ((max - min).abs() * 1e-3).max(1e-6);
                vec![
                    Float(if open_min { min } else { min - step }),
                    Float(if open_max { max } else { max + step }),
                    Float(f64::NAN),
                    Float(f64::INFINITY),
                ]
            }
            Range::Int { min, max } => {
                let mut v = vec![Float(0.5)];
                if max < i64::MAX {
                    v.push(Integer(max + 1));
                }
                if min > i64::MIN {
                    v.push(Integer(min - 1));
                }
                v
            }
        };
        v.push(S("1".into()));
        v
    }
}

/// A key of a file kind and its range. `path` is dotted; `[]` stands for
/// every table of an array (`experiment[].delay_s`).
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// The key.
    pub path: &'static str,
    /// Its range.
    pub range: Range,
}

/// Refuse the first declared key of `text` (read from `path`) whose value
/// is out of its range or not a number (absent keys take their defaults).
pub fn check_ranges(path: &Path, text: &str, keys: &[Declared]) -> Result<(), InputError> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        // Its syntax error is the parser's to report.
        Err(_) => return Ok(()),
    };
    for d in keys {
        let mut found = Vec::new();
        values_at(
            &toml::Value::Table(table.clone()),
            d.path,
            String::new(),
            &mut found,
        );
        for (key, v) in found {
            let ok = d.range.holds(&v);
            if ok == Some(true) {
                continue;
            }
            let shown = match &v {
                toml::Value::String(_) if is_secret_key(&key) => "(not shown)".to_string(),
                other => other.to_string(),
            };
            let what = if ok.is_none() {
                "is not a number of the right kind"
            } else {
                "is out of range"
            };
            return Err(InputError::new(path, format!("`{key}` = {shown} {what}"))
                .line(line_of_key(text, &key))
                .key(key)
                .hint(format!("write {}", d.range.describe())));
        }
    }
    Ok(())
}

/// The values at a declared path, with their concrete keys.
fn values_at(v: &toml::Value, path: &str, at: String, out: &mut Vec<(String, toml::Value)>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (name, each) = match head.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (head, false),
    };
    let Some(child) = v.as_table().and_then(|t| t.get(name)) else {
        return;
    };
    let key = if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    };
    let items: Vec<(String, &toml::Value)> = match (each, child) {
        (true, toml::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("{key}[{i}]"), x))
            .collect(),
        (true, _) => return,
        (false, x) => vec![(key, x)],
    };
    for (k, x) in items {
        match rest {
            Some(r) => values_at(x, r, k, out),
            None => out.push((k, x.clone())),
        }
    }
}

/// The line a concrete key is written on, found in the text: the line that
/// sets its last part within its section (`[a]`, `[[a]]` the n-th time,
/// or an inline table), else 1.
fn line_of_key(text: &str, key: &str) -> u64 {
    let parts: Vec<&str> = key.split('.').collect();
    let last = parts.last().copied().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last);
    let sets = |l: &str| {
        l.split([',', '{']).map(str::trim_start).any(|p| {
            p.strip_prefix(last)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
    };
    // Skip to the section of the first part, when the key has one.
    let mut from = 0;
    if parts.len() > 1 {
        let first = parts[0];
        let (name, nth) = match first.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().unwrap_or(0)),
            None => (first, 0),
        };
        let headers: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.trim();
                l == format!("[{name}]")
                    || l == format!("[[{name}]]")
                    || l.starts_with(&format!("[{name}."))
            })
            .map(|(i, _)| i)
            .collect();
        if let Some(h) = headers.get(nth).or(headers.first()) {
            from = *h;
        } else if let Some(i) = text.lines().position(|l| l.trim_start().starts_with(name)) {
            from = i;
        }
    }
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| sets(l))
        .map_or(1, |(i, _)| i as u64 + 1)
}
