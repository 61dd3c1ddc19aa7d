//! Registries that misbehave, faked in the test on 127.0.0.1: blobs whose bytes do not match
//! their digest, bodies cut short, slow-loris answers (headers or body one byte a second),
//! endless 401s, and redirects to another host, which must never receive the credentials.
//! Each pull ends in bounded time with an error naming the object, and leaves nothing behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use berth_system_tests::hostile::{
    FakeRegistry, RawImage, RawTar, Reply, Seen, assert_clean, berth_bounded, serve_image,
};

fn image() -> RawImage {
    image_marked("")
}

/// An image with a layer of its own (`mark` in a file), so its snapshots are its own.
fn image_marked(mark: &str) -> RawImage {
    RawImage::layer(
        RawTar::new()
            .dir("etc")
            .file("etc/hello", &vec![b'h'; 64 << 10])
            .file("etc/mark", mark.as_bytes())
            .finish(),
    )
}

/// Pulls `addr/hostile/NAME:v1` into namespace `ns` expecting failure; returns the error and
/// how long it took.
fn pull_err(berth: &Berth, ns: &str, addr: &str, extra: &[&str]) -> (String, Duration) {
    let name = format!("{addr}/hostile/img:v1");
    let mut args = vec!["-n", ns, "images", "pull", "--stall-timeout", "2"];
    args.extend_from_slice(extra);
    args.push(&name);
    let t = Instant::now();
    let (ok, e) = berth_bounded(berth, &args, Duration::from_secs(120));
    assert!(!ok, "berth {args:?} should fail: {e}");
    (e, t.elapsed())
}

fn name(addr: &str) -> String {
    format!("{addr}/hostile/img:v1")
}

#[test]
fn wrong_digests_are_refused() {
    let berth = Berth::start();
    let img = Arc::new(image());
    let layer = berth_ipc::Digest::of(&img.layers[0]);
    let config = berth_ipc::Digest::of(&img.config);
    for (what, bad) in [("layer", layer), ("config", config)] {
        let i = img.clone();
        let reg = FakeRegistry::start(move |req: &Seen| {
            if req.path.ends_with(&bad.to_string()) {
                let mut b = i.blobs().into_iter().find(|(d, _)| *d == bad).expect("blob").1;
                b[0] ^= 0xff;
                return Reply::ok(&b);
            }
            serve_image(&i, req).unwrap_or(Reply::status(404, None))
        });
        let (e, _) = pull_err(&berth, what, &reg.addr, &[]);
        assert!(e.contains(&bad.to_string()) && e.contains("digest"), "{what}: {e}");
        assert_clean(&berth, what, &name(&reg.addr), &img.layers);
    }
}

#[test]
fn truncated_body_fails_and_resumes_nothing_wrong() {
    let berth = Berth::start();
    let img = Arc::new(image());
    let layer = berth_ipc::Digest::of(&img.layers[0]);
    let i = img.clone();
    let reg = FakeRegistry::start(move |req: &Seen| {
        if req.path.ends_with(&layer.to_string()) {
            let full = &i.layers[0];
            return Reply::Truncated(full.len() as u64, full[..full.len() / 2].to_vec());
        }
        serve_image(&i, req).unwrap_or(Reply::status(404, None))
    });
    let (e, took) = pull_err(&berth, "trunc", &reg.addr, &[]);
    assert!(e.contains(&layer.to_string()), "{e}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_clean(&berth, "trunc", &name(&reg.addr), &img.layers);
}

#[test]
fn slow_loris_times_out() {
    let berth = Berth::start();
    let img = Arc::new(image());
    let layer = berth_ipc::Digest::of(&img.layers[0]);
    // Where the registry trickles: manifest headers, manifest body, layer body.
    let cases = ["manifest headers", "manifest body", "layer body"];
    for (n, what) in cases.into_iter().enumerate() {
        let i = img.clone();
        let reg = FakeRegistry::start(move |req: &Seen| {
            let hit =
                if n < 2 { req.path.contains("/manifests/") } else { req.path.ends_with(&layer.to_string()) };
            if hit {
                return match n {
                    0 => Reply::TrickleHeaders,
                    1 => Reply::TrickleBody(i.manifest.clone()),
                    _ => Reply::TrickleBody(i.layers[0].clone()),
                };
            }
            serve_image(&i, req).unwrap_or(Reply::status(404, None))
        });
        let ns = format!("loris{n}");
        let (e, took) = pull_err(&berth, &ns, &reg.addr, &[]);
        println!("{what}: {took:?}: {e}");
        // Stall timeout 2 s: a few windows and retries, far from the minutes a trickle takes.
        assert!(took < Duration::from_secs(40), "{what}: took {took:?}: {e}");
        if n < 2 {
            assert!(e.contains("timed out") && e.contains("manifest"), "{what}: {e}");
        } else {
            assert!(e.contains(&layer.to_string()), "{what}: {e}");
        }
        assert_clean(&berth, &ns, &name(&reg.addr), &img.layers);
    }
}

#[test]
fn endless_401_ends() {
    let berth = Berth::start();
    let img = Arc::new(image());
    // The token endpoint always refuses; then one that grants tokens the registry ignores.
    for (n, grant) in [(0, false), (1, true)] {
        let i = img.clone();
        let reg = Arc::new(std::sync::OnceLock::<String>::new());
        let r2 = reg.clone();
        let fake = FakeRegistry::start(move |req: &Seen| {
            if req.path.starts_with("/token") {
                return if grant { Reply::ok(br#"{"token":"t"}"#) } else { Reply::status(401, None) };
            }
            if req.path == "/v2/" {
                return serve_image(&i, req).unwrap_or(Reply::status(404, None));
            }
            let realm = format!(r#"Bearer realm="http://{}/token",service="fake""#, r2.get().expect("addr"));
            Reply::status(401, Some(("WWW-Authenticate", &realm)))
        });
        reg.set(fake.addr.clone()).expect("set");
        let ns = format!("auth{n}");
        for user in [None, Some("u:p")] {
            let extra: Vec<&str> = user.map(|u| vec!["--user", u]).unwrap_or_default();
            let (e, took) = pull_err(&berth, &ns, &fake.addr, &extra);
            assert!(e.contains("authentication required") || e.contains("credentials refused"), "{e}");
            assert!(took < Duration::from_secs(20), "took {took:?}");
        }
        let tokens = fake.seen().iter().filter(|s| s.path.starts_with("/token")).count();
        assert!(tokens <= 4, "{tokens} token requests for two pulls");
        assert_clean(&berth, &ns, &name(&fake.addr), &img.layers);
    }
}

const CREDS: &str = "dXNlcjpzM2NyZXQ="; // user:s3cret

#[test]
fn credentials_never_follow_a_redirect() {
    let berth = Berth::start();
    // The foreign host serves blobs; in the second round it asks for credentials itself
    // (a Bearer realm of its own), which must not make berth send them there.
    for (round, foreign_asks) in [(0, false), (1, true)] {
        let img = Arc::new(image_marked(&format!("round{round}")));
        let i = img.clone();
        let other_addr = Arc::new(std::sync::OnceLock::<String>::new());
        let oa = other_addr.clone();
        let other = FakeRegistry::start(move |req: &Seen| {
            if foreign_asks && req.header("authorization").is_none() && !req.path.starts_with("/token") {
                let realm = format!(r#"Bearer realm="http://{}/token""#, oa.get().expect("addr"));
                return Reply::status(401, Some(("WWW-Authenticate", &realm)));
            }
            if req.path.starts_with("/token") {
                return Reply::ok(br#"{"token":"stolen"}"#);
            }
            serve_image(&i, req).unwrap_or(Reply::status(404, None))
        });
        other_addr.set(other.addr.clone()).expect("set");
        let i = img.clone();
        let to = other.addr.clone();
        let reg = FakeRegistry::start(move |req: &Seen| {
            if req.header("authorization") != Some(&format!("Basic {CREDS}")) {
                return Reply::status(401, Some(("WWW-Authenticate", r#"Basic realm="fake""#)));
            }
            if req.path.contains("/blobs/") {
                let loc = format!("http://{to}{}", req.path);
                return Reply::status(307, Some(("Location", &loc)));
            }
            serve_image(&i, req).unwrap_or(Reply::status(404, None))
        });
        let ns = format!("redirect{round}");
        let args =
            ["-n", &ns, "images", "pull", "--stall-timeout", "2", "--user", "user:s3cret", &name(&reg.addr)];
        let out = berth.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let leaked: Vec<Seen> =
            other.seen().into_iter().filter(|s| s.header("authorization").is_some()).collect();
        assert!(
            leaked.iter().all(|s| !s.header("authorization").unwrap_or("").contains(CREDS)),
            "{leaked:?}"
        );
        assert!(leaked.is_empty(), "authorization sent to the foreign host: {leaked:?}");
        assert!(!other.seen().is_empty(), "the redirect was not followed: {stderr}");
        if foreign_asks {
            assert!(!out.status.success());
            assert!(stderr.contains("asks for credentials"), "{stderr}");
            assert_clean(&berth, &ns, &name(&reg.addr), &img.layers);
        } else {
            assert!(out.status.success(), "{stderr}");
        }
    }
}

#[test]
fn redirect_loops_and_foreign_schemes_end() {
    let berth = Berth::start();
    // Manifests redirect to themselves forever; blobs redirect to a file on this host.
    for (round, target) in [(0, "loop"), (1, "file:///etc/passwd"), (2, "ftp://127.0.0.1/x")] {
        let img = Arc::new(image_marked(&format!("redirect-{round}")));
        let i = img.clone();
        let reg = FakeRegistry::start(move |req: &Seen| {
            if round == 0 && req.path.contains("/manifests/") {
                return Reply::status(307, Some(("Location", &req.path)));
            }
            if round > 0 && req.path.contains("/blobs/") {
                return Reply::status(307, Some(("Location", target)));
            }
            serve_image(&i, req).unwrap_or(Reply::status(404, None))
        });
        let ns = format!("redir{round}");
        let (e, took) = pull_err(&berth, &ns, &reg.addr, &[]);
        println!("{target}: {took:?}: {e}");
        assert!(e.contains("redirect") || e.contains("scheme") || e.contains("HTTP 307"), "{target}: {e}");
        assert!(took < Duration::from_secs(30), "{target}: took {took:?}");
        let hops = reg.seen().len();
        assert!(hops < 64, "{target}: {hops} requests");
        assert_clean(&berth, &ns, &name(&reg.addr), &img.layers);
    }
}
