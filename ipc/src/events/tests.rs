//! Unit tests of the events vocabulary: validation texts, wire encoding, filter fields.

use super::payload::{ContentCreate, TaskExit};
use super::*;
use crate::codec;
use crate::error::Code;
use crate::filter::Filters;

fn exit_event() -> Envelope {
    Envelope {
        seq: 7,
        timestamp: 1,
        namespace: "k8s.io".into(),
        topic: topics::TASK_EXIT.into(),
        payload: TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            pid: 42,
            exit_status: 137,
            exited_at: 5,
        }
        .into(),
    }
}

#[test]
fn topics_are_well_formed_and_unique() {
    for t in topics::ALL {
        validate_topic(t).expect(t);
    }
    let mut all = topics::ALL.to_vec();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), topics::ALL.len());
    assert_eq!(topics::ALL.len(), 28);
}

#[test]
fn topic_errors() {
    assert_eq!(validate_topic("/tasks/nope").expect_err("unknown").message, "topic /tasks/nope: unknown");
    let e = validate_topic("tasks/exit").expect_err("no slash");
    assert_eq!(e.code, Code::InvalidArgument);
    assert_eq!(e.message, r#"topic "tasks/exit": must be '/' followed by identifiers joined by '/'"#);
    assert!(validate_topic("/tasks//exit").is_err());
    assert!(validate_topic("/").is_err());
}

#[test]
fn new_event_validation() {
    let ok = NewEvent::new("default", ContentCreate { digest: "sha256:ab".into(), size: 3 });
    assert_eq!(ok.topic, "/content/create");
    ok.validate().expect("valid");

    let mut wrong = ok.clone();
    wrong.topic = topics::CONTENT_DELETE.into();
    assert_eq!(
        wrong.validate().expect_err("mismatch").message,
        "event /content/delete: payload is a ContentCreate (topic /content/create)"
    );

    let mut bad_ns = ok.clone();
    bad_ns.namespace = "a b".into();
    assert_eq!(bad_ns.validate().expect_err("ns").code, Code::InvalidArgument);

    let big = NewEvent::new("default", ContentCreate { digest: "x".repeat(MAX_EVENT_LEN), size: 1 });
    let e = big.validate().expect_err("too big");
    assert!(e.message.starts_with("event /content/create: 65"), "{}", e.message);
    assert!(e.message.ends_with("bytes exceeds the limit of 65536"), "{}", e.message);
}

#[test]
fn publisher_ids() {
    validate_publisher("content-12-abc").expect("ok");
    assert!(validate_publisher("").is_err());
    assert!(validate_publisher("a\nb").is_err());
    assert!(validate_publisher(&"x".repeat(MAX_PUBLISHER_LEN + 1)).is_err());
}

#[test]
fn envelope_wire_layout_is_documented_order() {
    // seq, timestamp, namespace, topic, then the payload's variant index and fields.
    let env = Envelope {
        seq: 1,
        timestamp: 2,
        namespace: "d".into(),
        topic: "/x".into(),
        payload: Payload::NamespaceDelete(payload::NamespaceDelete { name: "n".into() }),
    };
    let bytes = codec::encode(&env).expect("encode");
    assert_eq!(bytes, [1, 2, 1, b'd', 2, b'/', b'x', 2, 1, b'n']);
    let item = codec::encode(&SubscribeItem::Lagged { resume_from: 300 }).expect("encode");
    assert_eq!(item, [2, 251, 0x2c, 0x01]);
}

#[test]
fn filter_fields() {
    let env = exit_event();
    let f = |s: &str| Filters::parse(&[s]).expect("parse").matches(&EnvelopeFields::new(&env));
    assert!(f("topic==/tasks/exit"));
    assert!(f(r#"topic~="^/tasks/""#));
    assert!(!f(r#"topic~="^/images/""#));
    assert!(f("namespace==k8s.io"));
    assert!(f("type==TaskExit"));
    assert!(f("seq==7"));
    assert!(f("event.container_id==c1"));
    assert!(f("event.exit_status==137"));
    assert!(f("event.pid!=1"));
    assert!(!f("event.nope"));
    assert!(f("event.container_id==c1,namespace==k8s.io"));
}
