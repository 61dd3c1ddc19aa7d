//! Corrupt a blob on disk by flipping a byte: `Check` (and `berth content check`, when the
//! CLI binary is built) names it and reports failure.

mod common;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::content::{Check, CheckItem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_named() {
    let svc = common::start().await;
    let mut digests = Vec::new();
    for i in 0..3u64 {
        let mut w = svc.client.writer(&format!("c{i}"), None, None).await.expect("open");
        w.write_at(0, common::data(100 + i, 70_000)).await.expect("write");
        digests.push(w.commit(None, None).await.expect("commit").digest);
    }
    let victim = digests[1];
    let path = svc.blobs().join(victim.hex());
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open blob as root");
    let mut b = [0u8; 1];
    file.read_at(&mut b, 500).expect("read");
    file.write_at(&[b[0] ^ 0x01], 500).expect("flip");
    drop(file);

    let mut stream = svc.client.client().stream(Check).await.expect("check");
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item.expect("item"));
    }
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[0], CheckItem::Bad { name, .. } if *name == format!("sha256/{}", victim.hex())),
        "{items:?}"
    );
    assert_eq!(items[1], CheckItem::Done { checked: 3, bad: 1 });

    // Through the CLI, when it has been built next to this test.
    let cli = std::env::current_exe().ok().and_then(|p| p.parent()?.parent().map(|d| d.join("berth")));
    match cli.filter(|p: &PathBuf| p.exists()) {
        None => println!("skipping the CLI half: the berth binary is not built in this target dir"),
        Some(berth) => {
            let out = std::process::Command::new(berth)
                .arg("--state")
                .arg(svc.state())
                .args(["content", "check", "--all-namespaces"])
                .output()
                .expect("run berth");
            assert!(!out.status.success(), "exit code must be non-zero");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains(&victim.hex()), "{stdout}");
            assert!(!stdout.contains(&digests[0].hex()), "{stdout}");
        }
    }
    svc.stop().await;
}
