//! The fields a `List` filter can read on a snapshot: `name`, `parent`, `kind`,
//! `labels.<key>`.

use std::borrow::Cow;

use berth_ipc::filter::{Adaptor, label_field};
use berth_ipc::snapshot::Info;

/// A snapshot record seen by filters.
pub struct InfoFields<'a>(pub &'a Info);

impl Adaptor for InfoFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("name", []) => Some(Cow::Borrowed(&self.0.name)),
            ("parent", []) => self.0.parent.as_deref().map(Cow::Borrowed),
            ("kind", []) => Some(Cow::Borrowed(self.0.kind.as_str())),
            ("labels", rest) => label_field(&self.0.labels, rest),
            _ => None,
        }
    }
}
