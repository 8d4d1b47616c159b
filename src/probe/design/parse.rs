//! What a design reads its keys through: one `[[experiment]]` table, the
//! accounts and the corpus, and errors that name the spec file, the line and
//! `experiment[N].key`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::accounts::{Accounts, Region};
use crate::corpus::ItemKind;
use crate::error::InputError;
use crate::platform::Target;
use crate::probe::chat::{involves_china, Chat};
use crate::probe::items::CorpusItem;
use crate::probe::locate::At;
use crate::probe::spec::MAX_SPAN_S;
use crate::ranges::{Declared, Range};

/// `delay_s`, the seconds from seed to test, as designs declare it.
pub const DELAY_S: Declared = Declared {
    path: "delay_s",
    range: Range::float(0.0, MAX_SPAN_S),
};

/// A filter of corpus items (`items = { label = [...], kind = [...] }`).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ItemFilter {
    /// Item ids.
    #[serde(default)]
    pub id: Vec<String>,
    /// `sensitive`, `benign`.
    #[serde(default)]
    pub label: Vec<String>,
    /// `image`, `document`.
    #[serde(default)]
    pub kind: Vec<String>,
    /// Topics.
    #[serde(default)]
    pub topic: Vec<String>,
}

impl ItemFilter {
    /// Whether it selects nothing in particular.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty() && self.label.is_empty() && self.kind.is_empty() && self.topic.is_empty()
    }
}

/// One experiment table being read.
pub struct ParseCx<'a> {
    pub(crate) at: &'a At<'a>,
    /// Its position among the spec's experiments (0-based).
    pub n: usize,
    pub(crate) table: &'a toml::Table,
    /// The accounts file.
    pub accounts: &'a Accounts,
    /// Every corpus item, in corpus order.
    pub items: &'a [CorpusItem],
    /// The spec's folder (relative paths start here).
    pub dir: &'a Path,
    /// The corpus folder (item paths start here).
    pub corpus: &'a Path,
    /// The design's name.
    pub design: &'static str,
    /// `name`, or the design's name and the experiment's number.
    pub name: String,
    /// `replicates` (1 when absent).
    pub replicates: u32,
    /// `test_chat`, resolved (it holds a china account).
    pub test_chat: Chat,
}

impl ParseCx<'_> {
    /// The keys every experiment has.
    pub fn common(&self) -> super::Common {
        super::Common {
            design: self.design,
            name: self.name.clone(),
            test_chat: self.test_chat.clone(),
            replicates: self.replicates,
        }
    }

    /// An error about `key` of this experiment.
    pub fn err(&self, key: &str, msg: impl Into<String>) -> InputError {
        self.at.exp(self.n, key, msg)
    }

    /// The value of `key`, if present.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, InputError> {
        let Some(v) = self.table.get(key) else {
            return Ok(None);
        };
        v.clone()
            .try_into::<T>()
            .map(Some)
            .map_err(|e| self.err(key, format!("invalid value: {}", e.message().trim())))
    }

    /// The value of `key`, which this design needs.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, InputError> {
        match self.get(key)? {
            Some(v) => Ok(v),
            None => Err(self.err(
                "kind",
                format!("a `{}` experiment needs `{key}`", self.design),
            )),
        }
    }

    /// `delay_s`: seconds from seed to test (30 when absent; its range,
    /// [`DELAY_S`], is checked before the design reads it).
    pub fn delay_s(&self) -> Result<f64, InputError> {
        Ok(self.get::<f64>("delay_s")?.unwrap_or(30.0))
    }

    /// A resolved path from `key`, relative to the spec.
    pub fn path(&self, key: &str) -> Result<PathBuf, InputError> {
        let p: PathBuf = self.require(key)?;
        Ok(self.dir.join(p))
    }

    /// `seed_chat`, resolved: between intl accounts only (by default the
    /// first two intl accounts of the accounts file).
    pub fn seed_chat(&self) -> Result<Chat, InputError> {
        let chat = match self.table.get("seed_chat") {
            Some(_) => crate::probe::chat::resolve(
                self.at,
                self.n,
                "seed_chat",
                &self.require("seed_chat")?,
                self.accounts,
            )?,
            None => {
                let intl: Vec<&str> = self
                    .accounts
                    .accounts
                    .iter()
                    .filter(|a| a.region == Region::Intl)
                    .map(|a| a.alias.as_str())
                    .collect();
                if intl.len() < 2 {
                    return Err(self
                        .err("kind", "no seed_chat given, and the accounts file has fewer than two intl accounts")
                        .hint("add seed_chat = { from = \"…\", to = \"…\" }"));
                }
                Chat {
                    from: intl[0].to_string(),
                    target: Target::Direct(intl[1].to_string()),
                    observer: intl[1].to_string(),
                }
            }
        };
        if involves_china(&chat, self.accounts) {
            return Err(self
                .err("seed_chat", "the seed chat includes a china account")
                .hint("seeds go between intl accounts only; that is the design (docs/SPEC.md)"));
        }
        Ok(chat)
    }

    /// `items`, which this design needs: the corpus items the filter selects.
    pub fn items(&self) -> Result<Vec<CorpusItem>, InputError> {
        let f: ItemFilter = self.require("items")?;
        if f.is_empty() {
            return Err(self
                .err("items", "an empty filter would select every item silently")
                .hint("name what to select, e.g. items = { label = [\"sensitive\"], kind = [\"image\"] }"));
        }
        for k in &f.kind {
            k.parse::<ItemKind>()
                .map_err(|m| self.err("items.kind", m))?;
        }
        for l in &f.label {
            if l != "sensitive" && l != "benign" {
                return Err(self.err(
                    "items.label",
                    format!("label must be `sensitive` or `benign`, not `{l}`"),
                ));
            }
        }
        for id in &f.id {
            self.item(id, "items")?;
        }
        let chosen: Vec<CorpusItem> = self
            .items
            .iter()
            .filter(|i| f.id.is_empty() || f.id.contains(&i.item.id))
            .filter(|i| f.label.is_empty() || f.label.contains(&i.item.label.to_string()))
            .filter(|i| f.kind.is_empty() || f.kind.contains(&i.item.kind.to_string()))
            .filter(|i| f.topic.is_empty() || f.topic.contains(&i.item.topic))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(self
                .err("items", "this filter matches no corpus item")
                .hint("check ids, labels (sensitive, benign), kinds (image, document) and topics against corpus/manifest.csv"));
        }
        Ok(chosen)
    }

    /// Only images: `items` held a document.
    pub fn images_only(&self, items: &[CorpusItem], what: &str) -> Result<(), InputError> {
        match items.iter().find(|i| i.item.kind != ItemKind::Image) {
            Some(doc) => Err(self
                .err(
                    "items",
                    format!("{what} apply to images; `{}` is a document", doc.item.id),
                )
                .hint("add kind = [\"image\"] to the filter")),
            None => Ok(()),
        }
    }

    /// The corpus item `id` (named under `key`).
    pub fn item(&self, id: &str, key: &str) -> Result<CorpusItem, InputError> {
        self.items
            .iter()
            .find(|i| i.item.id == id)
            .cloned()
            .ok_or_else(|| {
                self.err(key, format!("item `{id}` is not in the corpus"))
                    .hint("ids are the `id` column of corpus/manifest.csv")
            })
    }
}
