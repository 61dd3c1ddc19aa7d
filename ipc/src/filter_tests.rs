//! Unit tests of [`super`]: grammar, semantics, exact error texts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::*;
use crate::error::Code;

/// A test object: flat fields plus labels.
struct Obj {
    fields: BTreeMap<&'static str, &'static str>,
    labels: BTreeMap<String, String>,
}

impl Adaptor for Obj {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path.split_first() {
            Some((first, rest)) if first == "labels" => label_field(&self.labels, rest),
            Some((first, [])) => self.fields.get(first.as_str()).map(|v| Cow::Borrowed(*v)),
            _ => None,
        }
    }
}

fn obj() -> Obj {
    Obj {
        fields: [("topic", "/tasks/exit"), ("namespace", "k8s.io"), ("name", "a b")].into(),
        labels: [("a.b".to_string(), "x".to_string()), ("plain".to_string(), "y=z".to_string())].into(),
    }
}

fn m(filters: &[&str]) -> bool {
    Filters::parse(filters).expect("parse").matches(&obj())
}

fn err(filter: &str) -> Error {
    Filter::parse(filter).expect_err("should fail")
}

#[test]
fn equal_and_not_equal() {
    assert!(m(&["topic==/tasks/exit"]));
    assert!(!m(&["topic==/tasks/start"]));
    assert!(m(&["topic!=/tasks/start"]));
    assert!(!m(&["topic!=/tasks/exit"]));
    // absent field: == fails, != holds (containerd's semantics)
    assert!(!m(&["missing==x"]));
    assert!(m(&["missing!=x"]));
}

#[test]
fn regex_searches_anywhere() {
    assert!(m(&[r#"topic~="^/tasks/""#]));
    assert!(m(&["topic~=exit"]));
    assert!(!m(&["topic~=^/images/"]));
    assert!(m(&[r#"namespace~="k8s\.io$""#]));
    assert!(!m(&["missing~=."]));
    assert!(m(&["missing~=^$"]));
}

#[test]
fn presence() {
    assert!(m(&["topic"]));
    assert!(!m(&["missing"]));
    assert!(m(&["labels"]));
    assert!(m(&[r#"labels."a.b""#]));
    assert!(!m(&["labels.a.b"]));
}

#[test]
fn quoted_components_and_values() {
    assert!(m(&[r#"labels."a.b"==x"#]));
    assert!(m(&[r#"labels."a.b"=="x""#]));
    assert!(m(&["labels.plain==y=z"]));
    assert!(m(&[r#"name=="a b""#]));
    assert!(m(&["name==a b"]));
    let f = Filter::parse(r#"x=="q\"uote\\d\n\t\.""#).expect("parse");
    match &f.selectors()[0].op {
        Op::Equal(v) => assert_eq!(v, "q\"uote\\d\n\t\\."),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn comma_is_and_list_is_or() {
    assert!(m(&["topic==/tasks/exit,namespace==k8s.io"]));
    assert!(!m(&["topic==/tasks/exit,namespace==default"]));
    assert!(m(&["topic==/images/create", "namespace==k8s.io"]));
    assert!(!m(&["topic==/images/create", "namespace==default"]));
    assert!(m(&[" topic == /tasks/exit , namespace==k8s.io "]));
}

#[test]
fn empty_matches_everything() {
    assert!(m(&[]));
    assert!(m(&[""]));
    assert!(Filters::parse(&["", "topic==x"]).expect("parse").is_empty());
    assert!(!Filters::parse(&["topic==x"]).expect("parse").is_empty());
}

#[test]
fn uses_field_sees_first_component() {
    let f = Filters::parse(&["topic==x", "event.id==y"]).expect("parse");
    assert!(f.uses_field("event"));
    assert!(!f.uses_field("labels"));
}

#[test]
fn errors_name_filter_and_position() {
    let e = err("topic=x");
    assert_eq!(e.code, Code::InvalidArgument);
    assert_eq!(e.message, r#"filter "topic=x": expected operator, found '=' at position 5"#);
    assert_eq!(err("topic==").message, r#"filter "topic==": expected value at position 7"#);
    assert_eq!(err("==x").message, r#"filter "==x": expected field name, found '=' at position 0"#);
    assert_eq!(err("a==\"x").message, r#"filter "a==\"x": unterminated quoted string at position 3"#);
    assert_eq!(err("a.==x").message, r#"filter "a.==x": expected field name, found '=' at position 2"#);
    assert_eq!(err("a==x,").message, r#"filter "a==x,": expected field name, found end at position 5"#);
    assert_eq!(
        err(r#"a==x"y""#).message,
        r#"filter "a==x\"y\"": unexpected '"' inside a value (quote the whole value) at position 4"#
    );
    assert_eq!(err(r#"a=="x"y"#).message, r#"filter "a==\"x\"y": unexpected 'y' at position 6"#);
    assert_eq!(err(r#""".a"#).message, r#"filter "\"\".a": empty field name at position 2"#);
    let re = err("a~=(");
    assert!(re.message.starts_with(r#"filter "a~=(": bad regex ("#), "{}", re.message);
    assert!(re.message.ends_with("at position 3"), "{}", re.message);
}

#[test]
fn limits() {
    let long = format!("a=={}", "x".repeat(MAX_FILTER_LEN));
    assert_eq!(err(&long).message, format!("filter: longer than {MAX_FILTER_LEN} bytes"));
    assert!(Filter::parse("a~=x{1000}{1000}").is_err(), "huge regex refused");
}

#[test]
fn display_keeps_source() {
    let f = Filter::parse(r#"labels."a.b"~=x"#).expect("parse");
    assert_eq!(f.to_string(), r#"labels."a.b"~=x"#);
    assert_eq!(f.selectors()[0].path, vec!["labels".to_string(), "a.b".to_string()]);
}

#[test]
fn unicode_values() {
    let f = Filters::parse(&["name==héllo wörld"]).expect("parse");
    assert!(!f.matches(&obj()));
    assert!(Filter::parse("é==x").is_err());
}
