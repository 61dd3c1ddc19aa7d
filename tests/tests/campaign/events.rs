//! Event subscribers (`berth events --format json`, respawned from the next seq if the CLI
//! ever gives up) and the final check of the log: seqs contiguous from 1, and every
//! subscriber saw a contiguous run of it, each seq once, with the log's topic.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_client::Services;
use berth_ipc::events::{Since, Stats, Subscribe, SubscribeItem};
use berth_system_tests::{block_on, signal};
use nix::sys::signal::Signal;

use super::Shared;

/// One `berth events` subscriber and what it received.
pub struct Subscriber {
    /// `(seq, topic)` of every event received, in order.
    pub seen: Arc<Mutex<Vec<(u64, String)>>>,
    pid: Arc<AtomicU32>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    /// Starts `berth events --since SINCE --format json` (live when `since` is None).
    pub fn start(shared: Arc<Shared>, since: Option<u64>) -> Subscriber {
        let seen: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
        let pid = Arc::new(AtomicU32::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (s, p, d) = (seen.clone(), pid.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut since = since;
            while !d.load(Ordering::SeqCst) {
                let mut cmd = Command::new(&shared.berth);
                cmd.arg("--state").arg(&shared.state).args(["--format", "json", "events"]);
                if let Some(n) = since {
                    cmd.args(["--since", &n.to_string()]);
                }
                let mut child = cmd
                    .env("BERTH_TIMEOUT", "60")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn berth events");
                p.store(child.id(), Ordering::SeqCst);
                let out = child.stdout.take().expect("stdout");
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let v: serde_json::Value = serde_json::from_str(&line).expect("event json");
                    let seq = v["seq"].as_u64().expect("seq");
                    s.lock().expect("seen").push((seq, v["topic"].as_str().unwrap_or("").to_string()));
                    since = Some(seq + 1);
                }
                let _ = child.wait();
                if !d.load(Ordering::SeqCst) {
                    shared.retry_of("events-subscribe");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Subscriber { seen, pid, done, thread: Some(thread) }
    }

    /// The last seq received.
    pub fn last(&self) -> u64 {
        self.seen.lock().expect("seen").last().map_or(0, |e| e.0)
    }

    /// Stops the subscriber.
    pub fn stop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        signal(self.pid.load(Ordering::SeqCst), Signal::SIGTERM);
        if let Some(t) = self.thread.take() {
            t.join().expect("subscriber thread");
        }
    }
}

/// Reads the whole log back: `(seq, topic)` from seq 1 to the last stored.
pub fn read_log(services: &Services) -> Vec<(u64, String)> {
    block_on(async {
        let last = services.events.call(Stats).await.expect("event stats").last;
        let mut stream = services
            .events
            .stream(Subscribe { filters: vec![], since: Since::Seq(1) })
            .await
            .expect("subscribe");
        let mut log = Vec::new();
        while log.last().is_none_or(|(s, _)| *s < last) {
            let item = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("log item");
            match item.expect("log stream open").expect("log item ok") {
                SubscribeItem::Ready { oldest, .. } => assert_eq!(oldest, 1, "retention dropped events"),
                SubscribeItem::Event(e) => log.push((e.seq, e.topic)),
                SubscribeItem::Lagged { resume_from } => panic!("log reader lagged at {resume_from}"),
            }
        }
        log
    })
}

/// Checks the log and what each subscriber saw; returns the log's length.
pub fn check(shared: &Shared, services: &Services, subs: &mut [Subscriber]) -> usize {
    let log = read_log(services);
    let last = log.last().map_or(0, |e| e.0);
    for (i, (seq, _)) in log.iter().enumerate() {
        if *seq != i as u64 + 1 {
            shared.violation(format!("event log: seq {seq} at position {} (gap or duplicate)", i + 1));
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while subs.iter().any(|s| s.last() < last) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        sub.stop();
        let seen = sub.seen.lock().expect("seen");
        shared.tally.lock().expect("tally").ops.insert(format!("events-seen-{n}"), seen.len() as u64);
        if seen.last().map_or(0, |e| e.0) < last {
            shared.violation(format!("subscriber {n}: stopped at {:?} of {last}", seen.last()));
        }
        for w in seen.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                shared.violation(format!("subscriber {n}: seq {} after {}", w[1].0, w[0].0));
                break;
            }
        }
        for (seq, topic) in seen.iter() {
            let logged = log.get((*seq as usize).wrapping_sub(1)).map(|e| &e.1);
            if logged != Some(topic) {
                shared.violation(format!("subscriber {n}: seq {seq} is {topic}, the log says {logged:?}"));
                break;
            }
        }
    }
    log.len()
}
