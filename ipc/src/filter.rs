//! Filters in containerd's syntax, shared by every service that lists or streams objects.
//!
//! ```text
//! filters   := filter ( OR filter )*         a list of strings: any one may match
//! filter    := selector ( "," selector )*     comma = and
//! selector  := fieldpath [ op value ]         no operator: the field is present
//! fieldpath := field ( "." field )*
//! field     := [A-Za-z0-9_-]+ | quoted        labels."io.berth/x"
//! op        := "==" | "!=" | "~="             equal, not equal, regex search
//! value     := quoted | [^,"]+                 runs to the next comma; spaces trimmed
//! quoted    := '"' ( char | escape )* '"'      \" \\ \n \t \r; any other \x is kept as is
//! ```
//!
//! Semantics follow containerd: `a==v` needs `a` present and equal to `v`; `a!=v` holds when
//! `a` is absent or differs; `a~=re` searches `re` (Rust `regex` syntax) in `a`'s value, an
//! absent field reading as the empty string. An empty filter string, or an empty list,
//! matches everything. Objects expose their fields through [`Adaptor`].
//!
//! Parse errors are `InvalidArgument` naming the filter and the byte position.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::error::{Error, Result};

/// Longest filter string accepted.
pub const MAX_FILTER_LEN: usize = 4096;
/// Largest compiled regex (bytes of automaton), so a filter cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An object that filters can read: the value of a field path, if the object has it.
pub trait Adaptor {
    /// The value at `path` (`["labels", "a.b"]`), or `None` when absent.
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>>;
}

/// Reads `path[0]` in a label map: helper for adaptors of objects with `labels`.
pub fn label_field<'a>(labels: &'a BTreeMap<String, String>, path: &[String]) -> Option<Cow<'a, str>> {
    match path {
        [] => Some(Cow::Borrowed("")).filter(|_| !labels.is_empty()),
        [key] => labels.get(key).map(|v| Cow::Borrowed(v.as_str())),
        _ => None,
    }
}

/// The comparison of one selector.
#[derive(Debug, Clone)]
pub enum Op {
    /// The field is present.
    Present,
    /// The field is present and equals the value.
    Equal(String),
    /// The field is absent or differs from the value.
    NotEqual(String),
    /// The regex matches somewhere in the field's value.
    Matches(Regex),
}

/// `fieldpath op value`: one condition.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The field path, components unquoted.
    pub path: Vec<String>,
    /// The comparison.
    pub op: Op,
}

impl Selector {
    /// Whether `obj` satisfies this condition.
    pub fn matches(&self, obj: &dyn Adaptor) -> bool {
        let value = obj.field(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value.is_some_and(|x| x == v.as_str()),
            Op::NotEqual(v) => value.is_none_or(|x| x != v.as_str()),
            Op::Matches(re) => re.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

/// One filter string: every selector must hold.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    selectors: Vec<Selector>,
}

impl Filter {
    /// Parses one filter string.
    pub fn parse(input: &str) -> Result<Filter> {
        if input.len() > MAX_FILTER_LEN {
            return Err(Error::invalid(format!("filter: longer than {MAX_FILTER_LEN} bytes")));
        }
        let selectors = Parser { input, pos: 0 }.filter()?;
        Ok(Filter { source: input.to_string(), selectors })
    }

    /// Whether `obj` satisfies every selector.
    pub fn matches(&self, obj: &dyn Adaptor) -> bool {
        self.selectors.iter().all(|s| s.matches(obj))
    }

    /// The selectors, in source order.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// The string it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A list of filters: an object passes when any one matches, or when the list is empty.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// Parses every string; the first error wins.
    pub fn parse<S: AsRef<str>>(inputs: &[S]) -> Result<Filters> {
        inputs.iter().map(|s| Filter::parse(s.as_ref())).collect::<Result<Vec<_>>>().map(Filters)
    }

    /// Whether `obj` passes.
    pub fn matches(&self, obj: &dyn Adaptor) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.matches(obj))
    }

    /// Whether every object passes (no filter, or one without selectors).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.selectors.is_empty())
    }

    /// Whether any selector reads a path starting with `first` (lets a caller skip
    /// preparing fields nobody asks for).
    pub fn uses_field(&self, first: &str) -> bool {
        self.0.iter().flat_map(|f| &f.selectors).any(|s| s.path.first().is_some_and(|p| p == first))
    }

    /// The filters.
    pub fn filters(&self) -> &[Filter] {
        &self.0
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: impl fmt::Display) -> Error {
        Error::invalid(format!("filter {:?}: {what} at position {}", self.input, self.pos))
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn skip_spaces(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn filter(mut self) -> Result<Vec<Selector>> {
        let mut selectors = Vec::new();
        self.skip_spaces();
        if self.pos == self.input.len() {
            return Ok(selectors);
        }
        loop {
            selectors.push(self.selector()?);
            self.skip_spaces();
            match self.peek() {
                None => return Ok(selectors),
                Some(',') => self.pos += 1,
                Some(c) => return Err(self.err(format_args!("unexpected {c:?}"))),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector> {
        let path = self.fieldpath()?;
        self.skip_spaces();
        let rest = &self.input[self.pos..];
        let op = ["==", "!=", "~="].into_iter().find(|op| rest.starts_with(op));
        let Some(op) = op else {
            return match self.peek() {
                None | Some(',') => Ok(Selector { path, op: Op::Present }),
                Some(c) => Err(self.err(format_args!("expected operator, found {c:?}"))),
            };
        };
        self.pos += 2;
        let value_pos = self.pos;
        let value = self.value()?;
        let op = match op {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => {
                let re = regex::RegexBuilder::new(&value).size_limit(REGEX_SIZE_LIMIT).build();
                Op::Matches(re.map_err(|e| {
                    self.pos = value_pos;
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_lowercase();
                    self.err(format_args!("bad regex ({first})"))
                })?)
            }
        };
        Ok(Selector { path, op })
    }

    fn fieldpath(&mut self) -> Result<Vec<String>> {
        let mut path = Vec::new();
        loop {
            self.skip_spaces();
            path.push(self.field()?);
            if self.peek() == Some('.') {
                self.pos += 1;
            } else {
                return Ok(path);
            }
        }
    }

    fn field(&mut self) -> Result<String> {
        match self.peek() {
            Some('"') => {
                let s = self.quoted()?;
                if s.is_empty() {
                    return Err(self.err("empty field name"));
                }
                Ok(s)
            }
            Some(c) if is_field_char(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_field_char) {
                    self.pos += 1;
                }
                Ok(self.input[start..self.pos].to_string())
            }
            Some(c) => Err(self.err(format_args!("expected field name, found {c:?}"))),
            None => Err(self.err("expected field name, found end")),
        }
    }

    fn value(&mut self) -> Result<String> {
        self.skip_spaces();
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ',' {
                break;
            }
            if c == '"' {
                return Err(self.err("unexpected '\"' inside a value (quote the whole value)"));
            }
            self.pos += c.len_utf8();
        }
        let value = self.input[start..self.pos].trim_end();
        if value.is_empty() {
            return Err(self.err("expected value"));
        }
        Ok(value.to_string())
    }

    /// Reads `"..."` starting at the opening quote.
    fn quoted(&mut self) -> Result<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.input[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        self.pos = open;
        Err(self.err("unterminated quoted string"))
    }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
