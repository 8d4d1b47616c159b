//! Where in a spec file a key is: errors about a spec name its line, found
//! from the text (the TOML reader keeps no positions for values read later).

use std::path::Path;

use crate::error::InputError;

/// Where in the spec text: the line of `key` inside the `nth` `[[experiment]]`
/// (or inside `[section]`, or at the top when both are `None`).
pub(crate) fn locate(
    text: &str,
    experiment: Option<usize>,
    section: Option<&str>,
    key: &str,
) -> Option<u64> {
    locate_in(text, experiment.map(|n| ("experiment", n)), section, key)
}

/// [`locate`] in the `nth` `[[NAME]]` of any array of tables.
fn locate_in(
    text: &str,
    array: Option<(&str, usize)>,
    section: Option<&str>,
    key: &str,
) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let start: usize;
    let end: usize;
    if let Some((name, n)) = array {
        let head = format!("[[{name}]]");
        let heads: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(&head))
            .map(|(i, _)| i)
            .collect();
        start = *heads.get(n)?;
        end = heads.get(n + 1).copied().unwrap_or(lines.len());
    } else if let Some(s) = section {
        let head = format!("[{s}]");
        start = lines.iter().position(|l| l.trim() == head)?;
        end = (start + 1..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
    } else {
        start = 0;
        end = lines
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .unwrap_or(lines.len());
    }
    let found = (start..end).find(|&i| {
        let l = lines[i].trim_start();
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    Some(found.unwrap_or(start) as u64 + 1)
}

/// Builds errors that point into the spec.
pub(crate) struct At<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl At<'_> {
    pub(crate) fn top(&self, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(key);
        if let Some(l) = locate(self.text, None, None, key) {
            e = e.line(l);
        }
        e
    }
    pub(crate) fn section(&self, section: &str, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(format!("{section}.{key}"));
        if let Some(l) = locate(self.text, None, Some(section), key) {
            e = e.line(l);
        }
        e
    }
    pub(crate) fn published(&self, n: usize, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(format!("published[{n}].{key}"));
        if let Some(l) = locate_in(self.text, Some(("published", n)), None, key) {
            e = e.line(l);
        }
        e
    }
    pub(crate) fn exp(&self, n: usize, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(format!("experiment[{n}].{key}"));
        if let Some(l) = locate(self.text, Some(n), None, key) {
            e = e.line(l);
        }
        e
    }
}
