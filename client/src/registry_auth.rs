//! Where a registry's credentials may go, and the redirects that lead there.
//!
//! The rules (docs/architecture.md, "Registry credentials"):
//! - A host is loopback, and so plain HTTP by default, when it is `localhost` by name or a
//!   loopback address (`127.0.0.0/8`, `::1`) once parsed as an IP address: `127.evil.example`
//!   is a DNS name like any other.
//! - The registry's `Authorization` (Basic credentials or the Bearer token its realm issued)
//!   goes only to the registry's own origin (scheme, host and port): a redirect to another
//!   host, another port, or from `https` down to `http` on the same host, is followed without
//!   it. Credentials are refused outright for a plain-HTTP registry that is not loopback.
//! - Basic credentials go to a token realm only if the realm is on the registry's origin, or
//!   is `https` on the registry's host or a host of the registry's parent domain
//!   (`registry-1.docker.io` → `auth.docker.io`). containerd and Docker send them to any realm
//!   the challenge names, over any scheme; berth refuses instead, naming the realm.
//! - URLs are requested without user info, so none is sent or printed.

use std::net::IpAddr;
use std::time::Duration;

use berth_ipc::{Error, Result};
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION};
use reqwest::{Client, Request, Response, Url};

use crate::watchdog;

/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// `domain` without its port and IPv6 brackets: `[::1]:5000` → `::1`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match domain.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => domain,
    }
}

/// Is `host` (no port) loopback: `localhost` by name, or a loopback IP address?
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Is `domain` (a reference's registry, perhaps with a port) served over plain HTTP by
/// default: `localhost`, `127.0.0.0/8`, `::1`?
pub fn is_local(domain: &str) -> bool {
    is_loopback_host(host_of(domain))
}

/// `url` without user name or password.
pub fn strip_userinfo(mut url: Url) -> Url {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// May the registry at `base` have its `Authorization` sent to `target`? Only its own
/// origin: same scheme, host and port.
pub fn registry_may_receive(base: &Url, target: &Url) -> bool {
    base.origin() == target.origin()
}

/// May Basic credentials for the registry at `base` go to the token realm `realm`? `Err`
/// says why not.
pub fn realm_may_receive(base: &Url, realm: &Url) -> std::result::Result<(), String> {
    let rhost = realm.host_str().unwrap_or_default();
    if base.origin() == realm.origin() {
        return Ok(());
    }
    if realm.scheme() != "https" {
        return Err(format!("token realm {rhost} is not HTTPS"));
    }
    let bhost = base.host_str().unwrap_or_default();
    if rhost == bhost || same_parent_domain(bhost, rhost) {
        return Ok(());
    }
    Err(format!("token realm {rhost} is on neither the registry's host {bhost} nor its domain"))
}

/// Is `other` the parent domain of `host`, or under it? Only for DNS names whose parent has
/// at least two labels (`auth.docker.io` for `registry-1.docker.io`; never all of `.com`).
fn same_parent_domain(host: &str, other: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() || other.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return false;
    }
    let Some((_, parent)) = host.split_once('.') else { return false };
    parent.contains('.') && (other == parent || other.ends_with(&format!(".{parent}")))
}

/// Sends `req`, following up to [`MAX_REDIRECTS`] redirects by hand (the client follows
/// none), with `auth(url)` as the `Authorization` of each hop (none when it gives `None`).
/// A request whose body cannot be replayed returns its redirect to the caller.
pub async fn send_following(
    http: &Client,
    mut req: Request,
    auth: impl Fn(&Url) -> Option<HeaderValue>,
    label: &str,
    stall: Duration,
) -> Result<Response> {
    for _ in 0..=MAX_REDIRECTS {
        *req.url_mut() = strip_userinfo(req.url().clone());
        req.headers_mut().remove(AUTHORIZATION);
        if let Some(v) = auth(req.url()) {
            req.headers_mut().insert(AUTHORIZATION, v);
        }
        let from = req.url().clone();
        let next = req.try_clone();
        let resp = watchdog::started(label, stall, http.execute(req)).await?;
        if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Ok(resp);
        }
        let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
            return Ok(resp);
        };
        let to = from
            .join(loc)
            .map_err(|e| Error::unavailable(format!("{label}: redirect to a bad location: {e}")))?;
        if !matches!(to.scheme(), "http" | "https") {
            return Err(Error::unavailable(format!(
                "{label}: redirect to a {:?} URL refused (scheme not http or https)",
                to.scheme()
            )));
        }
        let Some(mut n) = next else { return Ok(resp) };
        *n.url_mut() = to;
        req = n;
    }
    Err(Error::unavailable(format!("{label}: more than {MAX_REDIRECTS} redirects")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn loopback_is_by_name_or_address_only() {
        for d in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:1",
            "127.0.0.1:41234",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_local(d), "{d}");
        }
        for d in [
            "127.evil.example",
            "127.evil.example:5000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "evil-localhost",
            "128.0.0.1",
            "example.com:5000",
            "docker.io",
            "[::2]:5000",
            "0.0.0.0:5000",
        ] {
            assert!(!is_local(d), "{d}");
        }
    }

    #[test]
    fn registry_auth_stays_on_its_origin() {
        let base = url("https://reg.example/");
        assert!(registry_may_receive(&base, &url("https://reg.example/v2/x/blobs/y")));
        assert!(registry_may_receive(&base, &url("https://reg.example:443/v2/")));
        // Downgrade on the same host, another port, another host.
        assert!(!registry_may_receive(&base, &url("http://reg.example/v2/")));
        assert!(!registry_may_receive(&base, &url("https://reg.example:8443/v2/")));
        assert!(!registry_may_receive(&base, &url("https://cdn.example/blob")));
        let local = url("http://127.0.0.1:5000/");
        assert!(registry_may_receive(&local, &url("http://127.0.0.1:5000/v2/")));
        assert!(!registry_may_receive(&local, &url("http://127.0.0.1:5001/v2/")));
    }

    #[test]
    fn realms_get_credentials_only_on_the_registry_domain_over_tls() {
        let hub = url("https://registry-1.docker.io/");
        assert!(realm_may_receive(&hub, &url("https://auth.docker.io/token")).is_ok());
        assert!(realm_may_receive(&hub, &url("https://docker.io/token")).is_ok());
        assert!(realm_may_receive(&hub, &url("https://registry-1.docker.io:8443/token")).is_ok());
        let e = realm_may_receive(&hub, &url("http://auth.docker.io/token")).expect_err("plain");
        assert!(e.contains("not HTTPS"), "{e}");
        let e = realm_may_receive(&hub, &url("https://evil.example/token")).expect_err("foreign");
        assert!(e.contains("evil.example"), "{e}");
        assert!(realm_may_receive(&hub, &url("https://docker.io.evil.example/t")).is_err());
        assert!(realm_may_receive(&hub, &url("https://evildocker.io/t")).is_err());
        // A two-label host's parent is a public suffix: only the host itself.
        let ex = url("https://example.com/");
        assert!(realm_may_receive(&ex, &url("https://other.com/t")).is_err());
        assert!(realm_may_receive(&ex, &url("https://example.com/t")).is_ok());
        // A plain-HTTP loopback registry: its own origin only.
        let local = url("http://127.0.0.1:5000/");
        assert!(realm_may_receive(&local, &url("http://127.0.0.1:5000/token")).is_ok());
        assert!(realm_may_receive(&local, &url("http://127.0.0.1:5001/token")).is_err());
        assert!(realm_may_receive(&local, &url("https://127.0.0.1:5001/token")).is_ok());
        assert!(realm_may_receive(&local, &url("https://127.0.0.2/token")).is_err());
    }

    #[test]
    fn user_info_is_dropped() {
        let u = strip_userinfo(url("https://user:pw@auth.example/token"));
        assert_eq!(u.as_str(), "https://auth.example/token");
    }
}
