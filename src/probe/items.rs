//! Corpus items as experiments use them: the manifest row with the index row
//! of its original file.

use crate::corpus::index::IndexRow;
use crate::corpus::Item;

/// A corpus item with the index row of its original file.
#[derive(Debug, Clone)]
pub struct CorpusItem {
    /// The manifest row.
    pub item: Item,
    /// Its index row.
    pub index: IndexRow,
}
