//! Where a registry's credentials and tokens go, on the wire (fakes on 127.0.0.1 ports; the
//! host classification and the TLS rules are unit tests in `client/src/registry_auth.rs`):
//! a token realm on another origin over plain HTTP gets no Basic credentials, and a Bearer
//! token never follows a redirect to another port.

use std::sync::{Arc, OnceLock};

use berth_system_tests::Berth;
use berth_system_tests::hostile::{FakeRegistry, RawImage, RawTar, Reply, Seen, assert_clean, serve_image};

const CREDS: &str = "dXNlcjpzM2NyZXQ="; // user:s3cret

fn image(mark: &str) -> RawImage {
    RawImage::layer(RawTar::new().dir("etc").file("etc/mark", mark.as_bytes()).finish())
}

fn name(addr: &str) -> String {
    format!("{addr}/hostile/img:v1")
}

/// Requests `fake` saw that carried any `Authorization`.
fn authorized(fake: &FakeRegistry) -> Vec<Seen> {
    fake.seen().into_iter().filter(|s| s.header("authorization").is_some()).collect()
}

#[test]
fn foreign_plain_http_realm_gets_no_credentials() {
    let berth = Berth::start();
    let img = Arc::new(image("realm"));
    // The realm, on another port: grants an anonymous token to anyone.
    let realm = FakeRegistry::start(|req: &Seen| {
        if req.path.starts_with("/token") {
            Reply::ok(br#"{"token":"anon"}"#)
        } else {
            Reply::status(404, None)
        }
    });
    let i = img.clone();
    let challenge = format!(r#"Bearer realm="http://{}/token",service="fake""#, realm.addr);
    let reg = FakeRegistry::start(move |req: &Seen| {
        if req.path != "/v2/" && req.header("authorization") != Some("Bearer anon") {
            return Reply::status(401, Some(("WWW-Authenticate", &challenge)));
        }
        serve_image(&i, req).unwrap_or(Reply::status(404, None))
    });
    let args =
        ["-n", "creds", "images", "pull", "--stall-timeout", "2", "--user", "user:s3cret", &name(&reg.addr)];
    let out = berth.cli(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a pull with credentials through a foreign realm succeeded");
    assert!(authorized(&realm).is_empty(), "credentials sent to the realm: {:?}", authorized(&realm));
    assert!(stderr.contains("token realm") && stderr.contains("credentials not sent"), "{stderr}");
    assert!(!stderr.contains("s3cret") && !stderr.contains(CREDS), "{stderr}");
    assert_clean(&berth, "creds", &name(&reg.addr), &img.layers);
    // Without credentials the same realm's anonymous token flow works.
    let args = ["-n", "anon", "images", "pull", "--stall-timeout", "2", &name(&reg.addr)];
    let out = berth.cli(&args);
    assert!(out.status.success(), "anonymous pull: {}", String::from_utf8_lossy(&out.stderr));
    assert!(authorized(&realm).is_empty(), "{:?}", authorized(&realm));
}

#[test]
fn bearer_token_never_follows_a_redirect() {
    let berth = Berth::start();
    let img = Arc::new(image("bearer"));
    let i = img.clone();
    let other =
        FakeRegistry::start(move |req: &Seen| serve_image(&i, req).unwrap_or(Reply::status(404, None)));
    let i = img.clone();
    let to = other.addr.clone();
    let me = Arc::new(OnceLock::<String>::new());
    let m = me.clone();
    let reg = FakeRegistry::start(move |req: &Seen| {
        if req.path.starts_with("/token") {
            // The registry's own realm: credentials may come here, and get a token.
            let ok = req.header("authorization") == Some(&format!("Basic {CREDS}"));
            return if ok { Reply::ok(br#"{"token":"secret-token"}"#) } else { Reply::status(401, None) };
        }
        if req.header("authorization") != Some("Bearer secret-token") {
            let realm = format!(r#"Bearer realm="http://{}/token""#, m.get().expect("addr"));
            return Reply::status(401, Some(("WWW-Authenticate", &realm)));
        }
        if req.path.contains("/blobs/") {
            return Reply::status(307, Some(("Location", &format!("http://{to}{}", req.path))));
        }
        serve_image(&i, req).unwrap_or(Reply::status(404, None))
    });
    me.set(reg.addr.clone()).expect("set");
    let args =
        ["-n", "bearer", "images", "pull", "--stall-timeout", "2", "--user", "user:s3cret", &name(&reg.addr)];
    let out = berth.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!other.seen().is_empty(), "the redirect was not followed");
    assert!(
        authorized(&other).is_empty(),
        "authorization sent to the redirect target: {:?}",
        authorized(&other)
    );
    let tokens = reg.seen().iter().filter(|s| s.path.starts_with("/token")).count();
    assert!(tokens >= 1, "the token flow was not used");
}
