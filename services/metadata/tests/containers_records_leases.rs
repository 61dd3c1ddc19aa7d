//! Containers, content and snapshot records, and leases through the socket.

mod common;

use berth_ipc::Code;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use common::*;

#[tokio::test]
async fn container_crud_filters_and_immutable_fields() {
    let svc = start().await;
    let c = &svc.client;
    let mut c1 = container("web");
    c1.labels = labels(&[("app", "web")]);
    c.call(CreateContainer { namespace: "default".into(), container: c1.clone() }).await.expect("create");
    let mut c2 = container("db");
    c2.runtime.name = "crun".into();
    c2.image = "docker.io/library/postgres:16".into();
    c.call(CreateContainer { namespace: "default".into(), container: c2.clone() }).await.expect("create");
    assert_code(
        c.call(CreateContainer { namespace: "default".into(), container: c1.clone() }).await,
        Code::AlreadyExists,
    );

    let got = c.call(GetContainer(by("default", "web"))).await.expect("get");
    assert_eq!(got.spec, c1.spec);
    let ids = |v: Vec<Container>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(collect(c, ListContainers(list_in("default", &[]))).await.expect("ls")), ["db", "web"]);
    assert_eq!(
        ids(collect(c, ListContainers(list_in("default", &["runtime.name==crun"]))).await.expect("ls")),
        ["db"]
    );
    assert_eq!(
        ids(collect(c, ListContainers(list_in("default", &["image~=postgres"]))).await.expect("ls")),
        ["db"]
    );
    assert_eq!(
        ids(collect(c, ListContainers(list_in("default", &["labels.app==web"]))).await.expect("ls")),
        ["web"]
    );
    assert_eq!(ids(collect(c, ListContainers(list_in("default", &["id==web"]))).await.expect("ls")), ["web"]);

    let mut upd = c1.clone();
    upd.labels = labels(&[("v", "2")]);
    upd.spec = b"{}".to_vec();
    upd.extensions.insert("x".into(), vec![1, 2]);
    let u = c
        .call(UpdateContainer {
            namespace: "default".into(),
            container: upd.clone(),
            paths: vec!["labels".into(), "extensions.x".into()],
        })
        .await
        .expect("update");
    assert_eq!(u.labels, labels(&[("v", "2")]));
    assert_eq!(u.spec, c1.spec, "spec not named, not changed");
    assert_eq!(u.extensions.get("x"), Some(&vec![1, 2]));
    let mut bad = c1.clone();
    bad.runtime.name = "crun".into();
    assert_code(
        c.call(UpdateContainer { namespace: "default".into(), container: bad, paths: vec![] }).await,
        Code::InvalidArgument,
    );
    let mut bad = c1.clone();
    bad.snapshot_key = "other".into();
    assert_code(
        c.call(UpdateContainer {
            namespace: "default".into(),
            container: bad,
            paths: vec!["snapshot_key".into()],
        })
        .await,
        Code::InvalidArgument,
    );
    assert_code(
        c.call(UpdateContainer {
            namespace: "default".into(),
            container: c1.clone(),
            paths: vec!["id".into()],
        })
        .await,
        Code::InvalidArgument,
    );
    c.call(DeleteContainer(by("default", "web"))).await.expect("delete");
    assert_code(c.call(GetContainer(by("default", "web"))).await, Code::NotFound);
    assert_code(c.call(DeleteContainer(by("default", "web"))).await, Code::NotFound);
    svc.stop().await;
}

#[tokio::test]
async fn content_and_snapshot_records() {
    let svc = start().await;
    let c = &svc.client;
    let d = Digest::of(b"blob");
    let put =
        |labels: Labels| PutContent { namespace: "default".into(), digest: d, size: 4, labels, lease: None };
    let r = c.call(put(labels(&[("a", "1")]))).await.expect("put");
    let again = c.call(put(labels(&[("a", "1")]))).await.expect("put is idempotent");
    assert_eq!(again.created, r.created);
    let r = c
        .call(UpdateContent {
            namespace: "default".into(),
            digest: d,
            labels: labels(&[("b", "2")]),
            paths: vec!["labels.b".into()],
        })
        .await
        .expect("label");
    assert_eq!(r.labels, labels(&[("a", "1"), ("b", "2")]));
    let l = collect(c, ListContent(list_in("default", &["labels.b==2"]))).await.expect("ls");
    assert_eq!(l.len(), 1);
    assert!(collect(c, ListContent(list_in("other", &[]))).await.expect("ls other").is_empty());
    c.call(RemoveContent { namespace: "default".into(), digest: d }).await.expect("rm");
    assert_code(c.call(GetContent { namespace: "default".into(), digest: d }).await, Code::NotFound);

    let snap = SnapshotRecord {
        snapshotter: "overlayfs".into(),
        key: "layer-2".into(),
        parent: Some("layer-1".into()),
        labels: labels(&[("x", "y")]),
        created: 0,
        updated: 0,
    };
    c.call(PutSnapshot { namespace: "default".into(), snapshot: snap.clone(), lease: None })
        .await
        .expect("put");
    let at =
        SnapshotRef { namespace: "default".into(), snapshotter: "overlayfs".into(), key: "layer-2".into() };
    let got = c.call(GetSnapshot(at.clone())).await.expect("get");
    assert_eq!(got.parent.as_deref(), Some("layer-1"));
    let l = collect(
        c,
        ListSnapshots { list: list_in("default", &["parent==layer-1"]), snapshotter: "overlayfs".into() },
    )
    .await
    .expect("ls");
    assert_eq!(l.len(), 1);
    let l = collect(c, ListSnapshots { list: list_in("default", &[]), snapshotter: "native".into() })
        .await
        .expect("ls");
    assert!(l.is_empty());
    let u = c
        .call(UpdateSnapshot { at: at.clone(), labels: Labels::new(), paths: vec!["labels".into()] })
        .await
        .expect("update");
    assert!(u.labels.is_empty());
    c.call(RemoveSnapshot(at.clone())).await.expect("rm");
    assert_code(c.call(GetSnapshot(at)).await, Code::NotFound);
    svc.stop().await;
}

#[tokio::test]
async fn leases_and_their_resources() {
    let svc = start().await;
    let c = &svc.client;
    let l = c
        .call(CreateLease {
            namespace: "default".into(),
            id: "pull-1".into(),
            labels: labels(&[("by", "test")]),
            ttl_ms: Some(60_000),
        })
        .await
        .expect("create");
    assert!(l.expires.is_some_and(|e| e > l.created));
    let generated = c
        .call(CreateLease {
            namespace: "default".into(),
            id: String::new(),
            labels: Labels::new(),
            ttl_ms: None,
        })
        .await
        .expect("generated id");
    assert!(!generated.id.is_empty() && generated.expires.is_none());
    assert_code(
        c.call(CreateLease {
            namespace: "default".into(),
            id: "pull-1".into(),
            labels: Labels::new(),
            ttl_ms: None,
        })
        .await,
        Code::AlreadyExists,
    );
    let ls = c.call(ListLeases(list_in("default", &["labels.by==test"]))).await.expect("ls");
    assert_eq!(ls.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["pull-1"]);

    let res = [
        LeaseResource::Content(Digest::of(b"x")),
        LeaseResource::Ingest("ingest-ref".into()),
        LeaseResource::Snapshot { snapshotter: "overlayfs".into(), key: "k/1".into() },
    ];
    for r in &res {
        let req =
            LeaseResourceRequest { namespace: "default".into(), lease: "pull-1".into(), resource: r.clone() };
        c.call(AddLeaseResource(req.clone())).await.expect("add");
        c.call(AddLeaseResource(req)).await.expect("add twice");
    }
    let mut got = c.call(ListLeaseResources(by("default", "pull-1"))).await.expect("ls res");
    got.sort();
    let mut want = res.to_vec();
    want.sort();
    assert_eq!(got, want);
    let req = LeaseResourceRequest {
        namespace: "default".into(),
        lease: "pull-1".into(),
        resource: res[1].clone(),
    };
    c.call(RemoveLeaseResource(req)).await.expect("remove");
    assert_eq!(c.call(ListLeaseResources(by("default", "pull-1"))).await.expect("ls").len(), 2);
    let req =
        LeaseResourceRequest { namespace: "default".into(), lease: "nope".into(), resource: res[0].clone() };
    assert_code(c.call(AddLeaseResource(req)).await, Code::NotFound);
    // Records put under a lease join it.
    c.call(PutContent {
        namespace: "default".into(),
        digest: Digest::of(b"y"),
        size: 1,
        labels: Labels::new(),
        lease: Some(generated.id.clone()),
    })
    .await
    .expect("put under lease");
    assert_eq!(
        c.call(ListLeaseResources(by("default", &generated.id))).await.expect("ls"),
        [LeaseResource::Content(Digest::of(b"y"))]
    );
    c.call(DeleteLease { namespace: "default".into(), id: "pull-1".into(), sync: false })
        .await
        .expect("delete");
    assert_code(c.call(ListLeaseResources(by("default", "pull-1"))).await, Code::NotFound);
    svc.stop().await;
}

#[tokio::test]
async fn renewed_leases_outlive_their_first_expiry_and_expired_ones_stay_dead() {
    let svc = start().await;
    let c = &svc.client;
    let create = |id: &str, ttl_ms| CreateLease {
        namespace: "default".into(),
        id: id.into(),
        labels: Default::default(),
        ttl_ms: Some(ttl_ms),
    };
    let renew = |id: &str| RenewLease { namespace: "default".into(), id: id.into(), ttl_ms: 60_000 };
    let short = c.call(create("job", 300)).await.expect("create");
    let renewed = c.call(renew("job")).await.expect("renew");
    let (was, now) = (short.expires.expect("ttl"), renewed.expires.expect("ttl"));
    assert!(now >= was + 59_000 * 1_000_000, "expiry moved from {was} to only {now}");

    c.call(create("late", 50)).await.expect("create");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // The renewed lease lives past its first expiry; the other one is past saving.
    let ids: Vec<String> = c
        .call(ListLeases(list_in("default", &[])))
        .await
        .expect("ls")
        .into_iter()
        .filter(|l| l.expires.is_some_and(|e| e > renewed.created + 1_000_000_000))
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, ["job"]);
    assert_code(c.call(renew("late")).await, Code::NotFound);
    assert_code(c.call(renew("nobody")).await, Code::NotFound);
}
