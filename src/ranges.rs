//! What every input file kind declares about its values: each key (TOML)
//! or column (CSV) and its type and range, in one table beside the file
//! kind's loader ([`Declared`]). Loaders refuse a value outside its range
//! before anything else reads it (`tomlfile::check_ranges` for TOML,
//! [`check_cell`] for a CSV cell), naming the file, line, key and range. The
//! same tables generate the bad-input tests ([`Range::outside`]), so a key
//! is tested as soon as it is declared.

use std::path::Path;

use crate::error::InputError;

/// A value's declared type and range.
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
    /// Text of `min` to `max` characters without control characters; with
    /// `min` above 0 it must hold more than white space.
    Text {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// A name: 1 to `max` ASCII letters and digits and the characters of
    /// `also` (aliases, ids, variable names).
    Name {
        /// Most characters.
        max: usize,
        /// Characters allowed besides letters and digits.
        also: &'static str,
    },
    /// One of a vocabulary, written exactly (or empty when `empty` allows).
    OneOf {
        /// The words.
        words: &'static [&'static str],
        /// Whether an empty value (absent) is allowed.
        empty: bool,
    },
    /// A calendar date, `YYYY-MM-DD` (or empty when `empty` allows).
    Date {
        /// Whether an empty value (unknown) is allowed.
        empty: bool,
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

    /// Whether it is a range of text (every CSV cell can be checked
    /// against it), not of numbers.
    pub fn is_text(&self) -> bool {
        !matches!(self, Range::Float { .. } | Range::Int { .. })
    }

    /// Whether the TOML value `v` is in range (`None`: not a value of the
    /// right type).
    pub fn holds(&self, v: &toml::Value) -> Option<bool> {
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
            (r, toml::Value::String(s)) if r.is_text() => Some(r.holds_text(s)),
            _ => None,
        }
    }

    /// Whether the text `s` (a CSV cell, a TOML string) is in range. A
    /// number range reads the text as a number.
    pub fn holds_text(&self, s: &str) -> bool {
        match *self {
            Range::Float { .. } => s
                .trim()
                .parse::<f64>()
                .is_ok_and(|x| self.holds(&toml::Value::Float(x)) == Some(true)),
            Range::Int { .. } => s
                .trim()
                .parse::<i64>()
                .is_ok_and(|x| self.holds(&toml::Value::Integer(x)) == Some(true)),
            Range::Text { min, max } => {
                let n = s.chars().count();
                (min..=max).contains(&n)
                    && !s.chars().any(char::is_control)
                    && (min == 0 || !s.trim().is_empty())
            }
            Range::Name { max, also } => {
                !s.is_empty()
                    && s.chars().count() <= max
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || also.contains(c))
            }
            Range::OneOf { words, empty } => (empty && s.is_empty()) || words.contains(&s),
            Range::Date { empty } => {
                (empty && s.is_empty())
                    || (s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
            }
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
            Range::Text { min: 0, max } => {
                format!("text of at most {max} characters, without control characters")
            }
            Range::Text { min, max } => format!(
                "text of {min} to {max} characters, not only spaces, without control characters"
            ),
            Range::Name { max, also } => {
                let also: Vec<String> = also.chars().map(|c| format!("`{c}`")).collect();
                format!(
                    "1 to {max} ASCII letters, digits{}{}",
                    if also.is_empty() { "" } else { " and " },
                    also.join(", ")
                )
            }
            Range::OneOf { words, empty } => {
                let words: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!(
                    "one of {}{}",
                    words.join(", "),
                    if empty { " (or nothing)" } else { "" }
                )
            }
            Range::Date { empty } => format!(
                "a date as YYYY-MM-DD{}",
                if empty { " (or nothing)" } else { "" }
            ),
        }
    }

    /// Values just outside the range, and values of the wrong type (for the
    /// generated bad-input tests). A text range's values are all strings
    /// but the last, so a CSV test takes the strings.
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
            Range::Text { min, max } => {
                let mut v = vec![S("x".repeat(max + 1)), S("a\u{7}b".into())];
                if min > 0 {
                    v.push(S(String::new()));
                    v.push(S("   ".into()));
                }
                v
            }
            Range::Name { max, .. } => vec![
                S(String::new()),
                S("a b".into()),
                S("é".into()),
                S("x".repeat(max + 1)),
            ],
            Range::OneOf { words, empty } => {
                let mut v = vec![
                    S(format!("{}x", words.first().copied().unwrap_or_default())),
                    S(words.first().copied().unwrap_or("x").to_uppercase()),
                ];
                if !empty {
                    v.push(S(String::new()));
                }
                v
            }
            Range::Date { empty } => {
                let mut v = vec![
                    S("2026-13-01".into()),
                    S("2026-02-30".into()),
                    S("08/12/2026".into()),
                    S("2026-1-5".into()),
                ];
                if !empty {
                    v.push(S(String::new()));
                }
                v
            }
        };
        v.push(match self.is_text() {
            true => Integer(1),
            false => S("1".into()),
        });
        v
    }
}

/// A key of a file kind (or a column of a CSV kind) and its range. `path`
/// is dotted; `[]` stands for every table of an array
/// (`account[].login`), or, last, every value of a list (`offsets_s[]`).
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// The key.
    pub path: &'static str,
    /// Its range.
    pub range: Range,
}

/// Refuse a CSV cell outside its column's declared range: `value` of
/// `column` on `line` of `path`. Secrets are not CSV columns, so the value
/// is quoted (shortened when long).
pub fn check_cell(path: &Path, line: u64, d: &Declared, value: &str) -> Result<(), InputError> {
    if d.range.holds_text(value) {
        return Ok(());
    }
    let n = value.chars().count();
    let shown: String = value.chars().take(40).collect();
    let more = if n > 40 {
        format!("…` ({n} characters)")
    } else {
        "`".to_string()
    };
    Err(InputError::new(
        path,
        format!(
            "`{}` = `{}{more} is out of range",
            d.path,
            shown.escape_debug()
        ),
    )
    .line(line)
    .key(d.path)
    .hint(format!("write {}", d.range.describe())))
}

/// The declared column `name` of a CSV kind.
pub fn column<'a>(columns: &'a [Declared], name: &str) -> Option<&'a Declared> {
    columns.iter().find(|d| d.path == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range refuses every value its `outside` gives, and holds a
    /// value inside.
    #[test]
    fn outside_values_are_outside_and_inside_values_inside() {
        let ranges = [
            (Range::float(0.0, 1.0), toml::Value::Float(0.5)),
            (Range::above(0.0, 1.0), toml::Value::Float(1.0)),
            (Range::below(0.0, 1.0), toml::Value::Float(0.0)),
            (Range::int(1, 5), toml::Value::Integer(5)),
            (
                Range::Text { min: 1, max: 4 },
                toml::Value::String("abcd".into()),
            ),
            (
                Range::Text { min: 0, max: 4 },
                toml::Value::String(String::new()),
            ),
            (
                Range::Name { max: 3, also: "-" },
                toml::Value::String("a-1".into()),
            ),
            (
                Range::OneOf {
                    words: &["intl", "china"],
                    empty: false,
                },
                toml::Value::String("china".into()),
            ),
            (
                Range::Date { empty: true },
                toml::Value::String("2024-02-29".into()),
            ),
        ];
        for (r, inside) in ranges {
            assert_eq!(r.holds(&inside), Some(true), "{r:?} {inside}");
            for v in r.outside() {
                assert_ne!(r.holds(&v), Some(true), "{r:?} holds {v}");
                // A number range's string is a value of the wrong type in
                // TOML, and a number in a CSV cell.
                if let (true, toml::Value::String(s)) = (r.is_text(), &v) {
                    assert!(!r.holds_text(s), "{r:?} holds the text {s}");
                }
            }
        }
    }
}
