//! Images and namespaces through the socket: create, get, list with filters, field-path
//! updates, delete, validation, namespace isolation, implicit namespaces.

mod common;

use berth_ipc::Code;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use common::*;

#[tokio::test]
async fn image_crud_filters_and_updates() {
    let svc = start().await;
    let c = &svc.client;
    let mut alpine = image("docker.io/library/alpine:3", b"m1");
    alpine.labels = labels(&[("io.berth/role", "base"), ("tier", "1")]);
    let created =
        c.call(CreateImage { namespace: "default".into(), image: alpine.clone() }).await.expect("create");
    assert!(created.created > 0 && created.created == created.updated);
    assert_code(
        c.call(CreateImage { namespace: "default".into(), image: alpine.clone() }).await,
        Code::AlreadyExists,
    );
    c.call(CreateImage { namespace: "default".into(), image: image("docker.io/library/busybox:1", b"m2") })
        .await
        .expect("create second");

    let got = c.call(GetImage(by("default", "docker.io/library/alpine:3"))).await.expect("get");
    assert_eq!(got.target, alpine.target);
    assert_eq!(got.labels, alpine.labels);
    assert_code(c.call(GetImage(by("default", "nope"))).await, Code::NotFound);

    let names = |v: Vec<Image>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    let all = collect(c, ListImages(list_in("default", &[]))).await.expect("list");
    assert_eq!(names(all), ["docker.io/library/alpine:3", "docker.io/library/busybox:1"]);
    let f = collect(c, ListImages(list_in("default", &["name~=busy"]))).await.expect("list");
    assert_eq!(names(f), ["docker.io/library/busybox:1"]);
    let f =
        collect(c, ListImages(list_in("default", &["labels.\"io.berth/role\"==base"]))).await.expect("list");
    assert_eq!(names(f), ["docker.io/library/alpine:3"]);
    let digest = Digest::of(b"m2").to_string();
    let f = collect(c, ListImages(list_in("default", &[&format!("target.digest=={digest}")])))
        .await
        .expect("list");
    assert_eq!(names(f), ["docker.io/library/busybox:1"]);
    let f = collect(
        c,
        ListImages(list_in("default", &["target.mediatype~=manifest,labels.tier==1", "name~=busy"])),
    )
    .await
    .expect("list");
    assert_eq!(f.len(), 2, "or of two filters");
    let err =
        assert_code(collect(c, ListImages(list_in("default", &["name=="]))).await, Code::InvalidArgument);
    assert!(err.message.contains("position") || err.message.contains("at "), "{err}");

    // Field paths: one label set, one removed, target untouched unless named.
    let mut upd = image("docker.io/library/alpine:3", b"other");
    upd.labels = labels(&[("new", "x")]);
    let paths = vec!["labels.new".to_string(), "labels.tier".to_string()];
    let u = c
        .call(UpdateImage { namespace: "default".into(), image: upd.clone(), paths })
        .await
        .expect("update labels");
    assert_eq!(u.labels, labels(&[("io.berth/role", "base"), ("new", "x")]));
    assert_eq!(u.target.digest, Digest::of(b"m1"));
    assert!(u.updated > u.created);
    let u = c
        .call(UpdateImage { namespace: "default".into(), image: upd.clone(), paths: vec!["target".into()] })
        .await
        .expect("update target");
    assert_eq!(u.target.digest, Digest::of(b"other"));
    assert_code(
        c.call(UpdateImage { namespace: "default".into(), image: upd.clone(), paths: vec!["name".into()] })
            .await,
        Code::InvalidArgument,
    );

    c.call(DeleteImage {
        namespace: "default".into(),
        name: "docker.io/library/alpine:3".into(),
        sync: false,
    })
    .await
    .expect("delete");
    assert_code(c.call(GetImage(by("default", "docker.io/library/alpine:3"))).await, Code::NotFound);
    assert_code(
        c.call(DeleteImage {
            namespace: "default".into(),
            name: "docker.io/library/alpine:3".into(),
            sync: false,
        })
        .await,
        Code::NotFound,
    );
    svc.stop().await;
}

#[tokio::test]
async fn validation_errors_are_invalid_argument() {
    let svc = start().await;
    let c = &svc.client;
    assert_code(
        c.call(CreateImage { namespace: "bad/ns".into(), image: image("x", b"1") }).await,
        Code::InvalidArgument,
    );
    assert_code(
        c.call(CreateImage { namespace: "a".into(), image: image("", b"1") }).await,
        Code::InvalidArgument,
    );
    let mut big = image("x", b"1");
    big.labels = labels(&[("k", &"v".repeat(4096))]);
    let err =
        assert_code(c.call(CreateImage { namespace: "a".into(), image: big }).await, Code::InvalidArgument);
    assert!(err.message.contains("4096"), "{err}");
    let id77 = "c".repeat(77);
    assert_code(
        c.call(CreateContainer { namespace: "a".into(), container: container(&id77) }).await,
        Code::InvalidArgument,
    );
    svc.stop().await;
}

#[tokio::test]
async fn namespaces_are_isolated_implicit_and_deleted_only_when_empty() {
    let svc = start().await;
    let c = &svc.client;
    c.call(CreateImage { namespace: "a".into(), image: image("img", b"1") }).await.expect("create in a");
    c.call(CreateContainer { namespace: "a".into(), container: container("c1") })
        .await
        .expect("container in a");
    assert_code(c.call(GetImage(by("b", "img"))).await, Code::NotFound);
    assert_code(c.call(GetContainer(by("b", "c1"))).await, Code::NotFound);
    assert!(collect(c, ListImages(list_in("b", &[]))).await.expect("list b").is_empty());
    assert!(collect(c, ListContainers(list_in("b", &[]))).await.expect("list b").is_empty());
    // The same name in b is a different object.
    c.call(CreateImage { namespace: "b".into(), image: image("img", b"2") }).await.expect("create in b");
    let a = c.call(GetImage(by("a", "img"))).await.expect("get a");
    assert_eq!(a.target.digest, Digest::of(b"1"));

    let ns: Vec<String> = c.call(ListNamespaces).await.expect("ls").into_iter().map(|n| n.name).collect();
    assert_eq!(ns, ["a", "b"], "created implicitly");
    let n = c
        .call(CreateNamespace { namespace: Namespace { name: "c".into(), labels: labels(&[("x", "1")]) } })
        .await
        .expect("create c");
    assert_eq!(n.labels, labels(&[("x", "1")]));
    assert_code(
        c.call(CreateNamespace { namespace: Namespace { name: "c".into(), labels: Labels::new() } }).await,
        Code::AlreadyExists,
    );
    let n = c
        .call(UpdateNamespace {
            namespace: Namespace { name: "c".into(), labels: labels(&[("y", "2")]) },
            paths: vec!["labels.y".into(), "labels.x".into()],
        })
        .await
        .expect("label");
    assert_eq!(n.labels, labels(&[("y", "2")]));

    assert_code(c.call(DeleteNamespace { name: "a".into() }).await, Code::FailedPrecondition);
    c.call(DeleteImage { namespace: "a".into(), name: "img".into(), sync: false }).await.expect("rm image");
    c.call(DeleteContainer(by("a", "c1"))).await.expect("rm container");
    c.call(DeleteNamespace { name: "a".into() }).await.expect("now empty");
    assert_code(c.call(DeleteNamespace { name: "a".into() }).await, Code::NotFound);
    let ns: Vec<String> = c.call(ListNamespaces).await.expect("ls").into_iter().map(|n| n.name).collect();
    assert_eq!(ns, ["b", "c"]);
    svc.stop().await;
}

#[tokio::test]
async fn data_survives_a_restart() {
    let svc = start().await;
    svc.client
        .call(CreateImage { namespace: "default".into(), image: image("keep", b"1") })
        .await
        .expect("create");
    let dir = svc.stop().await;
    let config = config(&dir);
    let svc = start_with(dir, config).await;
    let img = svc.client.call(GetImage(by("default", "keep"))).await.expect("still there");
    assert_eq!(img.target.digest, Digest::of(b"1"));
    svc.stop().await;
}

#[tokio::test]
async fn lists_longer_than_a_page_arrive_whole_and_in_order() {
    let svc = start().await;
    let total = LIST_PAGE * 2 + 7;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = svc.client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..total).step_by(8) {
                let img = image(&format!("img-{i:05}"), format!("{i}").as_bytes());
                c.call(CreateImage { namespace: "many".into(), image: img }).await.expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let mut stream = svc.client.stream(ListImages(list_in("many", &[]))).await.expect("list");
    let mut pages = Vec::new();
    while let Some(page) = stream.next().await {
        pages.push(page.expect("page"));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [LIST_PAGE, LIST_PAGE, 7]);
    let names: Vec<String> = pages.into_iter().flatten().map(|i| i.name).collect();
    let want: Vec<String> = (0..total).map(|i| format!("img-{i:05}")).collect();
    assert_eq!(names, want);
    svc.stop().await;
}
