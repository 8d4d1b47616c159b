//! The accounts file (TOML): who may be messaged.
//!
//! ```toml
//! [[account]]
//! alias = "intl-a"          # the only name that reaches a dataset
//! region = "intl"           # "intl" | "china"
//! login = "alice"           # the platform's login name; never in a dataset
//! password_env = "CP_PW_A"  # or password_file = "secrets/a" (mode 0600),
//!                           # or password = "..." (testbed only)
//! [[group]]
//! name = "seed-group"
//! members = ["intl-a", "intl-b"]
//! ```
//!
//! Secrets are resolved only when needed ([`Account::password`]) and never
//! printed: `Debug` of an account redacts them.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::InputError;
use crate::ranges::{Declared, Range};

/// Where an account is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Registered outside mainland China.
    Intl,
    /// Registered with a mainland-China phone number.
    China,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Intl => "intl",
            Region::China => "china",
        })
    }
}

/// One account, as written in the file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The alias: the only name that reaches a dataset.
    pub alias: String,
    /// intl | china.
    pub region: Region,
    /// The platform's login name.
    pub login: String,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (must be mode 0600), relative to the accounts file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password itself (accepted for the testbed only).
    #[serde(default)]
    pub password: Option<String>,
    /// Platform profile name (optional).
    #[serde(default)]
    pub profile: Option<String>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("alias", &self.alias)
            .field("region", &self.region)
            .field("login", &"<redacted>")
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// A group chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Member aliases.
    pub members: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    account: Vec<Account>,
    #[serde(default)]
    group: Vec<Group>,
}

/// A validated accounts file.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// Where it was read from.
    pub path: PathBuf,
    /// The accounts, in file order.
    pub accounts: Vec<Account>,
    /// The groups, in file order.
    pub groups: Vec<Group>,
}

/// Every key of an accounts file and its range (checked before anything
/// else reads the file; the bad-input tests are generated from it).
pub const RANGES: &[Declared] = &[
    key(
        "account[].alias",
        Range::Name {
            max: 64,
            also: "-_",
        },
    ),
    key(
        "account[].region",
        Range::OneOf {
            words: &["intl", "china"],
            empty: false,
        },
    ),
    key("account[].login", Range::Text { min: 1, max: 256 }),
    key(
        "account[].password_env",
        Range::Name {
            max: 128,
            also: "_",
        },
    ),
    key("account[].password_file", Range::Text { min: 1, max: 4096 }),
    key("account[].password", Range::Text { min: 1, max: 1024 }),
    key("account[].profile", Range::Text { min: 1, max: 256 }),
    key("group[].name", Range::Text { min: 1, max: 64 }),
    key(
        "group[].members[]",
        Range::Name {
            max: 64,
            also: "-_",
        },
    ),
];

const fn key(path: &'static str, range: Range) -> Declared {
    Declared { path, range }
}

impl Accounts {
    /// Read and validate an accounts file: unique aliases, logins and group
    /// names; group members must be accounts; exactly one credential source.
    pub fn load(path: &Path) -> Result<Accounts, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, format!("cannot read the accounts file: {e}")))?;
        crate::tomlfile::check_ranges(path, &text, RANGES)?;
        let file: File = crate::tomlfile::parse(path, &text)?;
        let line_of = |needle: &str| -> u64 {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i as u64 + 1)
                .unwrap_or(1)
        };
        let mut aliases = HashSet::new();
        let mut logins = HashSet::new();
        for (i, a) in file.account.iter().enumerate() {
            let at = |key: &str, msg: String| {
                InputError::new(path, msg)
                    .line(line_of(&format!("\"{}\"", a.alias)))
                    .key(format!("account[{i}].{key}"))
            };
            if a.alias.is_empty()
                || !a
                    .alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(at(
                    "alias",
                    format!("invalid alias `{}`: use letters, digits, `-`, `_`", a.alias),
                ));
            }
            if !aliases.insert(a.alias.clone()) {
                return Err(at("alias", format!("duplicate alias `{}`", a.alias)));
            }
            if a.login.trim().is_empty() || a.login.chars().any(char::is_control) {
                return Err(at(
                    "login",
                    format!(
                        "account `{}` has an empty login (or one with control characters)",
                        a.alias
                    ),
                ));
            }
            if !logins.insert(a.login.clone()) {
                return Err(at(
                    "login",
                    format!("two accounts share the login of `{}`", a.alias),
                ));
            }
            let sources = [
                a.password_env.is_some(),
                a.password_file.is_some(),
                a.password.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if sources != 1 {
                return Err(at(
                    "password_env",
                    format!(
                        "account `{}` needs exactly one of password_env, password_file, password",
                        a.alias
                    ),
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, g) in file.group.iter().enumerate() {
            let at = |key: &str, msg: String| {
                InputError::new(path, msg)
                    .line(line_of(&format!("\"{}\"", g.name)))
                    .key(format!("group[{i}].{key}"))
            };
            if !names.insert(g.name.clone()) {
                return Err(at("name", format!("duplicate group `{}`", g.name)));
            }
            if g.members.len() < 2 {
                return Err(at(
                    "members",
                    format!("group `{}` needs at least two members", g.name),
                ));
            }
            for m in &g.members {
                if !aliases.contains(m) {
                    return Err(at(
                        "members",
                        format!("group `{}` names unknown account `{m}`", g.name),
                    )
                    .hint("members are aliases of [[account]] entries"));
                }
            }
        }
        Ok(Accounts {
            path: path.to_path_buf(),
            accounts: file.account,
            groups: file.group,
        })
    }

    /// The account with this alias.
    pub fn get(&self, alias: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.alias == alias)
    }

    /// The account with this login.
    pub fn by_login(&self, login: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.login == login)
    }

    /// The group with this name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Resolve an account's password. `testbed` allows an inline password.
    pub fn password(&self, a: &Account, testbed: bool) -> Result<String, InputError> {
        if let Some(p) = &a.password {
            if !testbed {
                eprintln!(
                    "warning: {}: account `{}` has an inline password; use password_env or password_file for a real platform",
                    self.path.display(),
                    a.alias
                );
            }
            return Ok(p.clone());
        }
        if let Some(var) = &a.password_env {
            return std::env::var(var).map_err(|_| {
                InputError::new(
                    &self.path,
                    format!(
                        "environment variable `{var}` (password of `{}`) is not set",
                        a.alias
                    ),
                )
                .key("password_env")
                .hint(format!("export {var}=…"))
            });
        }
        if let Some(file) = &a.password_file {
            let full = self.path.parent().unwrap_or(Path::new(".")).join(file);
            check_mode(&full)?;
            let s = std::fs::read_to_string(&full).map_err(|e| {
                InputError::new(
                    &full,
                    format!("cannot read the password file of `{}`: {e}", a.alias),
                )
            })?;
            return Ok(s.trim_end_matches(['\n', '\r']).to_string());
        }
        Err(InputError::new(
            &self.path,
            format!("account `{}` has no credential", a.alias),
        ))
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), InputError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| InputError::new(path, format!("cannot read the password file: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(InputError::new(path, "password file is readable by others")
            .hint(format!("chmod 600 {}", path.display())));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), InputError> {
    Ok(())
}
