//! Reading the TOML input files (accounts, policies, specs, profiles) with
//! errors that name the file, the line and the key, as every input error must.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::InputError;
use crate::ranges::Declared;

/// Whether a key path names a secret (its value must never be printed): a
/// password, secret or token, and a login (which never reaches a dataset).
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_lowercase();
    let last = last.split('[').next().unwrap_or(&last);
    last == "password" || last == "login" || last.contains("secret") || last.contains("token")
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

/// Refuse the first declared key of `text` (read from `path`) whose value
/// is out of its range or not a value of its type (absent keys take their
/// defaults).
pub fn check_ranges(path: &Path, text: &str, keys: &[Declared]) -> Result<(), InputError> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        // Its syntax error is the parser's to report.
        Err(_) => return Ok(()),
    };
    check_ranges_at(path, text, &toml::Value::Table(table), "", keys)
}

/// [`check_ranges`] for one table of the file, `value`, found at `prefix`
/// (`experiment[2]`): `keys` are relative to it, the keys in errors are not.
pub fn check_ranges_at<'a>(
    path: &Path,
    text: &str,
    value: &toml::Value,
    prefix: &str,
    keys: impl IntoIterator<Item = &'a Declared>,
) -> Result<(), InputError> {
    for d in keys {
        let mut found = Vec::new();
        values_at(value, d.path, prefix.to_string(), &mut found);
        for (key, v) in found {
            let ok = d.range.holds(&v);
            if ok == Some(true) {
                continue;
            }
            let shown = match &v {
                _ if is_secret_key(&key) => "(not shown)".to_string(),
                toml::Value::String(t) if t.chars().count() > 40 => format!(
                    "\"{}…\" ({} characters)",
                    t.chars().take(40).collect::<String>().escape_debug(),
                    t.chars().count()
                ),
                other => other.to_string(),
            };
            let what = if ok.is_none() {
                "is not a value of the right type"
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
