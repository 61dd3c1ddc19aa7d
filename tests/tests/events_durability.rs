//! SIGKILL the events service while 5 publishers each publish 10,000 events: after the
//! launcher restarts it, the log holds all 50,000, each exactly once, seqs contiguous.
//!
//! The publishers are the real embedded `Publisher` (outbox, retry, idempotency keys), so
//! the test also shows that an events outage neither blocks nor fails publishing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_ipc::events::payload::ContentCreate;
use berth_ipc::events::{NewEvent, Payload, PublishBatch, Since, Stats, Subscribe, SubscribeItem, topics};
use berth_ipc::launcher::ServiceState;
use berth_ipc::publisher::Publisher;
use berth_system_tests::{Berth, signal};
use nix::sys::signal::Signal;

const PUBLISHERS: u64 = 5;
const EACH: u64 = 10_000;

#[test]
fn sigkill_during_publishing_loses_and_duplicates_nothing() {
    let mut berth = Berth::start();
    let old_pid = berth.status("events").pid.expect("events running");
    let clients = berth.clients(Duration::from_secs(20));
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let socket = berth.state.join("events.sock");

    let publishing = rt.spawn(async move {
        let mut tasks = Vec::new();
        for p in 0..PUBLISHERS {
            let publisher = Publisher::new(&socket, &format!("durability{p}"), 2 * EACH as usize);
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                for i in 0..EACH {
                    publisher.publish("default", ContentCreate { digest: format!("p{p}"), size: i });
                    if i % 100 == 99 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                let publish_time = started.elapsed();
                let flushed = publisher.flush(Duration::from_secs(60)).await;
                (publish_time, flushed, publisher.stats())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("publisher task"));
        }
        out
    });

    // Kill the service once part of the events is stored.
    let events = clients.events.clone();
    rt.block_on(async {
        loop {
            let stored = events.call(Stats).await.map(|s| s.last).unwrap_or(0);
            if stored >= 5_000 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let stored_at_kill = rt.block_on(events.call(Stats)).expect("stats").last;
    signal(old_pid, Signal::SIGKILL);
    println!("SIGKILL events (pid {old_pid}) with {stored_at_kill} events stored");

    let results = rt.block_on(publishing).expect("publishers");
    for (i, (publish_time, flushed, stats)) in results.iter().enumerate() {
        println!("publisher {i}: publish loop {publish_time:?}, {stats:?}");
        assert!(*flushed, "publisher {i} flushed everything: {stats:?}");
        assert_eq!((stats.stored, stats.dropped, stats.rejected), (EACH, 0, 0), "publisher {i}");
    }
    assert!(stored_at_kill < PUBLISHERS * EACH, "the kill happened mid-way ({stored_at_kill} stored)");
    let status = berth.wait_until("events restarted", Duration::from_secs(10), |l| {
        l.iter().any(|s| s.name == "events" && s.state == ServiceState::Running && s.pid != Some(old_pid))
    });
    assert!(status.iter().any(|s| s.name == "events" && s.restarts >= 1));

    // Read the whole log back.
    let (seqs, mine) = rt.block_on(async {
        let last = events.call(Stats).await.expect("stats").last;
        let mut stream =
            events.stream(Subscribe { filters: vec![], since: Since::Seq(1) }).await.expect("subscribe");
        let mut seqs = Vec::new();
        let mut mine: HashMap<(String, u64), u32> = HashMap::new();
        while seqs.last().is_none_or(|s| *s < last) {
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("item");
            match item.expect("not ended").expect("ok") {
                SubscribeItem::Ready { oldest, .. } => assert_eq!(oldest, 1),
                SubscribeItem::Event(e) => {
                    seqs.push(e.seq);
                    if let (topics::CONTENT_CREATE, Payload::ContentCreate(c)) = (e.topic.as_str(), e.payload)
                    {
                        *mine.entry((c.digest, c.size)).or_default() += 1;
                    }
                }
                SubscribeItem::Lagged { resume_from } => panic!("lagged at {resume_from}"),
            }
        }
        (seqs, mine)
    });
    let n = seqs.len() as u64;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "seqs contiguous from 1");
    assert_eq!(mine.len() as u64, PUBLISHERS * EACH, "every event present");
    assert!(mine.values().all(|c| *c == 1), "no event stored twice");
    println!("log holds {n} events ({} from the publishers), contiguous", mine.len());
}

/// 120,000 events stored (more than the default 100,000-key window), the service SIGKILLed
/// and restarted by the launcher: a retry of the oldest key still in the window is answered
/// with its seq, the newest too, and nothing is stored twice.
#[test]
fn duplicate_publish_after_a_restart_is_deduplicated_with_a_large_log() {
    const TOTAL: u64 = 120_000;
    let mut berth = Berth::start();
    let old_pid = berth.status("events").pid.expect("events running");
    let clients = berth.clients(Duration::from_secs(20));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let events = clients.events.clone();
    let event = |i: u64| NewEvent::new("default", ContentCreate { digest: format!("big{i}"), size: i });
    let publish = |first: u64, n: u64| {
        let req = PublishBatch {
            publisher: "big".into(),
            first_counter: first,
            events: (first..first + n).map(event).collect(),
        };
        rt.block_on(events.call(req)).expect("publish").seqs
    };
    // The seq each counter got (other services may publish in between).
    let mut seqs = Vec::with_capacity(TOTAL as usize);
    let mut counter = 0;
    while counter < TOTAL {
        let n = (TOTAL - counter).min(4_096);
        seqs.extend(publish(counter, n));
        counter += n;
    }
    assert_eq!(seqs.len() as u64, TOTAL);
    let last = rt.block_on(events.call(Stats)).expect("stats").last;
    assert!(last >= seqs[TOTAL as usize - 1]);

    signal(old_pid, Signal::SIGKILL);
    berth.wait_until("events restarted", Duration::from_secs(30), |l| {
        l.iter().any(|s| s.name == "events" && s.state == ServiceState::Running && s.pid != Some(old_pid))
    });
    // Near the oldest key of the window (100,000 events), with a margin for the events the
    // other services publish meanwhile (the restart's own). An answer with the original seq
    // means nothing was stored again: a stored event would get a seq above `last`.
    let old = TOTAL - 100_000 + 100;
    assert_eq!(publish(old, 1), [seqs[old as usize]], "an old key of the window answered");
    assert_eq!(publish(TOTAL - 2, 2), seqs[TOTAL as usize - 2..], "newest keys answered");
    let stats = rt.block_on(events.call(Stats)).expect("stats");
    assert!(stats.last < last + 100, "no duplicates stored: last {} after {last}", stats.last);
}
