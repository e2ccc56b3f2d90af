//! `MultiMap`: the ordered name → many-values map behind request arguments
//! (`Arguments`, Tornado's `request.arguments` / `query_arguments` /
//! `body_arguments`) and uploaded files (`Files`, Tornado's
//! `request.files`). Mirrors the `Dict[str, List[...]]` of `httputil.py`.

use super::multipart::HTTPFile;
use super::url::parse_query;

/// An ordered multi-map from names to values; names compare exactly
/// (case-sensitively), as form field names do.
///
/// Entries stay in the order they were added; a lookup scans them, which is
/// cheap next to parsing the body they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiMap<V> {
    entries: Vec<(String, V)>,
}

/// Query or body arguments: every value of a field, decoded to text.
pub type Arguments = MultiMap<String>;

/// Uploaded files of a `multipart/form-data` body, by field name.
pub type Files = MultiMap<HTTPFile>;

impl<V> Default for MultiMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V> MultiMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one value for `name`, after any existing ones.
    pub fn add(&mut self, name: impl Into<String>, value: V) {
        self.entries.push((name.into(), value));
    }

    /// The first value given for `name`.
    pub fn get_first(&self, name: &str) -> Option<&V> {
        self.get_all(name).next()
    }

    /// The last value given for `name` (what Tornado's `get_argument`
    /// returns when a field is repeated).
    pub fn get_last(&self, name: &str) -> Option<&V> {
        self.get_all(name).last()
    }

    /// Every value given for `name`, in order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a V> + use<'a, 'n, V> {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Whether `name` has at least one value.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// All `(name, value)` entries in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of values (a name given twice counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends every entry of `other` (how Tornado merges query and body
    /// arguments into `request.arguments`).
    pub fn extend_from(&mut self, other: &MultiMap<V>)
    where
        V: Clone,
    {
        self.entries.extend(other.entries.iter().cloned());
    }
}

impl Arguments {
    /// Parses a query string (the part of the URI after `?`) into arguments;
    /// see [`parse_query`] for the grammar.
    pub fn from_query(query: &str) -> Self {
        parse_query(query).into_iter().collect()
    }
}

impl<V, N: Into<String>> FromIterator<(N, V)> for MultiMap<V> {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().map(|(n, v)| (n.into(), v)).collect(),
        }
    }
}

impl<V, N: Into<String>> Extend<(N, V)> for MultiMap<V> {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(n, v)| (n.into(), v)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_all_and_order() {
        let args = Arguments::from_query("room=main&x=1&room=other&empty=");
        assert_eq!(args.get_first("room").map(String::as_str), Some("main"));
        assert_eq!(args.get_last("room").map(String::as_str), Some("other"));
        let rooms: Vec<&str> = args.get_all("room").map(String::as_str).collect();
        assert_eq!(rooms, ["main", "other"]);
        assert_eq!(args.get_first("empty").map(String::as_str), Some(""));
        assert_eq!(args.get_first("missing"), None);
        assert!(!args.contains("ROOM"), "names are case-sensitive");
        assert_eq!(args.len(), 4);
        let names: Vec<&str> = args.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["room", "x", "room", "empty"]);
    }

    #[test]
    fn extend_merges_in_order() {
        let mut all = Arguments::from_query("a=1");
        all.extend_from(&Arguments::from_query("a=2&b=3"));
        all.extend([("c", "4".to_string())]);
        let a: Vec<&str> = all.get_all("a").map(String::as_str).collect();
        assert_eq!(a, ["1", "2"]);
        assert!(all.contains("b") && all.contains("c"));
        assert!(Arguments::new().is_empty());
    }
}
