//! Chats of a spec: who sends, where (a direct peer or a group), and whose
//! client is watched; read from `{ from, to | group, observer }` tables and
//! checked against the accounts file.

use serde::Deserialize;

use crate::accounts::{Accounts, Region};
use crate::error::InputError;
use crate::platform::Target;
use crate::probe::locate::At;

/// A chat as the spec writes it.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChatFile {
    from: String,
    to: Option<String>,
    group: Option<String>,
    observer: Option<String>,
}

/// A resolved chat: who sends, where, and who watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Sender alias.
    pub from: String,
    /// Direct peer or group.
    pub target: Target,
    /// The alias whose client is watched.
    pub observer: String,
}

impl Chat {
    /// `direct` or `group`.
    pub fn channel(&self) -> &'static str {
        match self.target {
            Target::Direct(_) => "direct",
            Target::Group(_) => "group",
        }
    }

    /// The peer's alias or the group's name (the `chat` column).
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Direct(a) | Target::Group(a) => a,
        }
    }
}

/// Whether a china-registered account is in the chat.
pub fn involves_china(c: &Chat, accounts: &Accounts) -> bool {
    let members: Vec<String> = match &c.target {
        Target::Direct(a) => vec![c.from.clone(), a.clone()],
        Target::Group(g) => accounts
            .group(g)
            .map(|g| g.members.clone())
            .unwrap_or_default(),
    };
    members
        .iter()
        .any(|m| accounts.get(m).is_some_and(|a| a.region == Region::China))
}

/// Resolve the chat under `key` of experiment `n`.
pub(crate) fn resolve(
    at: &At,
    n: usize,
    key: &str,
    c: &ChatFile,
    accounts: &Accounts,
) -> Result<Chat, InputError> {
    let known = |alias: &str, k: &str| -> Result<(), InputError> {
        if accounts.get(alias).is_some() {
            Ok(())
        } else {
            Err(at
                .exp(
                    n,
                    key,
                    format!(
                        "account `{alias}` ({k}) is not in the accounts file {}",
                        accounts.path.display()
                    ),
                )
                .hint("chatprobe only messages accounts listed there"))
        }
    };
    known(&c.from, "from")?;
    let chat = match (&c.to, &c.group) {
        (Some(to), None) => {
            known(to, "to")?;
            if to == &c.from {
                return Err(at.exp(n, key, format!("`{to}` would message itself")));
            }
            if let Some(o) = &c.observer {
                if o != to {
                    return Err(at.exp(n, key, "in a direct chat the observer is the receiver"));
                }
            }
            Chat {
                from: c.from.clone(),
                target: Target::Direct(to.clone()),
                observer: to.clone(),
            }
        }
        (None, Some(g)) => {
            let Some(group) = accounts.group(g) else {
                return Err(at
                    .exp(n, key, format!("group `{g}` is not in the accounts file"))
                    .hint("groups are [[group]] tables of the accounts file"));
            };
            if !group.members.contains(&c.from) {
                return Err(at.exp(n, key, format!("`{}` is not a member of group `{g}`", c.from)));
            }
            let observer = match &c.observer {
                Some(o) => {
                    known(o, "observer")?;
                    if !group.members.contains(o) || o == &c.from {
                        return Err(at.exp(
                            n,
                            key,
                            format!("observer `{o}` must be another member of group `{g}`"),
                        ));
                    }
                    o.clone()
                }
                None => crate::platform::default_observer(accounts, g, &c.from)
                    .ok_or_else(|| at.exp(n, key, format!("group `{g}` has no other member")))?,
            };
            Chat {
                from: c.from.clone(),
                target: Target::Group(g.clone()),
                observer,
            }
        }
        _ => {
            return Err(at
                .exp(n, key, "a chat needs exactly one of `to` and `group`")
                .hint("{ from = \"intl-a\", to = \"intl-b\" } or { from = \"intl-a\", group = \"seed-group\" }"))
        }
    };
    Ok(chat)
}
