//! A client of the OCI distribution API (v2), hand-written on `reqwest` (rustls): manifests
//! bounded in size, blobs streamed with HTTP ranges, chunk-free monolithic uploads, and
//! anonymous, Basic and Bearer authentication. Redirects are followed by hand; where
//! credentials and tokens may go (the registry's own origin, a token realm on its domain over
//! TLS) is [`crate::registry_auth`]'s to say. Foreign layer URLs are never used.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_ipc::{Code, Digest, Error, Result};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url, header};
use tokio::sync::RwLock;

use crate::oci::{self, MAX_JSON};
use crate::reference::Reference;
pub use crate::registry_auth::is_local;
use crate::registry_auth::{realm_may_receive, registry_may_receive, send_following, strip_userinfo};
use crate::watchdog::{self, STALL_TIMEOUT, Watchdog};

/// User name and password for a registry.
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Use HTTP even for hosts other than localhost and 127.0.0.0/8.
    pub plain_http: bool,
    /// Credentials for Basic auth or the token flow.
    pub credentials: Option<Credentials>,
    /// How long the registry may take to start a response, and the window in which a body
    /// must make progress ([`watchdog::STALL_TIMEOUT`] when `None`).
    pub stall_timeout: Option<Duration>,
    /// Another endpoint serving the reference's registry (a mirror): plain HTTP or not, and
    /// its host\[:port\]. The image keeps its name.
    pub endpoint: Option<(bool, String)>,
}

#[derive(Clone)]
enum Auth {
    None,
    Basic,
    Bearer(String),
}

/// One repository on one registry.
pub struct Registry {
    http: reqwest::Client,
    base: String,
    base_url: Url,
    host: String,
    repo: String,
    scope: String,
    creds: Option<Credentials>,
    auth: RwLock<Auth>,
    stall: Duration,
}

impl Registry {
    /// A client of `r`'s repository; `push` asks for push rights as well.
    pub fn new(r: &Reference, opts: &RegistryOptions, push: bool) -> Result<Registry> {
        let (host, plain_http) = match &opts.endpoint {
            Some((plain, host)) => (host.clone(), *plain),
            None => (r.registry_host().to_string(), opts.plain_http),
        };
        let local = is_local(&host);
        let scheme = if plain_http || local { "http" } else { "https" };
        if opts.credentials.is_some() && scheme == "http" && !local {
            return Err(Error::new(
                Code::PermissionDenied,
                format!(
                    "registry {}: credentials go only over TLS, or to a loopback registry over plain HTTP; \
                     not sent to a plain-HTTP registry on another host",
                    r.registry_host()
                ),
            ));
        }
        let stall = opts.stall_timeout.unwrap_or(STALL_TIMEOUT).max(Duration::from_secs(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal_cause("http client", e))?;
        let actions = if push { "pull,push" } else { "pull" };
        let base = format!("{scheme}://{host}");
        let base_url = Url::parse(&base)
            .map_err(|e| Error::invalid(format!("registry {}: not a host: {e}", r.registry_host())))?;
        Ok(Registry {
            http,
            base,
            base_url,
            host: host.clone(),
            repo: r.path.clone(),
            scope: format!("repository:{}:{actions}", r.path),
            creds: opts.credentials.clone(),
            auth: RwLock::new(Auth::None),
            stall,
        })
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repo)
    }

    /// The `Authorization` the registry is owed, for a request to `url`: none unless `url` is
    /// on the registry's own origin.
    fn authorization(&self, auth: &Auth, url: &Url) -> Option<HeaderValue> {
        if !registry_may_receive(&self.base_url, url) {
            return None;
        }
        match (auth, &self.creds) {
            (Auth::Basic, Some(c)) => basic(&self.http, c),
            (Auth::Bearer(t), _) => HeaderValue::from_str(&format!("Bearer {t}")).ok().map(sensitive),
            _ => None,
        }
    }

    /// Sends `rb` with the registry's authorization, following redirects (without it off the
    /// registry's origin), failing if no response starts within the stall timeout.
    async fn start(&self, what: &str, rb: RequestBuilder) -> Result<Response> {
        let label = format!("registry {}: {what}", self.host);
        let req = rb.build().map_err(|e| Error::internal_cause(&label, watchdog::describe(&e)))?;
        let auth = self.auth.read().await.clone();
        send_following(&self.http, req, |u| self.authorization(&auth, u), &label, self.stall).await
    }

    /// Whether `url` is on the registry's own origin, not a host a redirect led to.
    fn on_registry(&self, url: &Url) -> bool {
        registry_may_receive(&self.base_url, url)
    }

    /// Sends a request built by `build` (rebuilt for the retry after authenticating).
    async fn send(&self, what: &str, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        let resp = self.start(what, build()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        // A host a redirect led to asks for credentials: they are not its to have.
        if !self.on_registry(resp.url()) {
            return Err(Error::new(
                Code::PermissionDenied,
                format!(
                    "registry {}: {what}: redirected to {} which asks for credentials; not sent",
                    self.host,
                    resp.url().host_str().unwrap_or("another host")
                ),
            ));
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.authenticate(&challenge).await?;
        let resp = self.start(what, build()).await?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(self.denied());
        }
        Ok(resp)
    }

    fn denied(&self) -> Error {
        let how = if self.creds.is_some() { "credentials refused" } else { "authentication required" };
        Error::new(Code::PermissionDenied, format!("registry {}: {how}", self.host))
    }

    async fn authenticate(&self, challenge: &str) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" if self.creds.is_some() => {
                *self.auth.write().await = Auth::Basic;
                Ok(())
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| self.denied())?;
                let realm = Url::parse(realm)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .map(strip_userinfo)
                    .ok_or_else(|| {
                        Error::unavailable(format!(
                            "registry {}: token realm is not an HTTP(S) URL",
                            self.host
                        ))
                    })?;
                let creds = match &self.creds {
                    Some(c) => {
                        realm_may_receive(&self.base_url, &realm).map_err(|why| {
                            Error::new(
                                Code::PermissionDenied,
                                format!("registry {}: {why}; credentials not sent", self.host),
                            )
                        })?;
                        basic(&self.http, c)
                    }
                    None => None,
                };
                let mut rb = self.http.get(realm.clone()).query(&[("scope", self.scope.as_str())]);
                if let Some(s) = params.get("service") {
                    rb = rb.query(&[("service", s.as_str())]);
                }
                let label = format!("registry {}: token", self.host);
                let req = rb.build().map_err(|e| Error::internal_cause(&label, watchdog::describe(&e)))?;
                // The credentials go to the realm's own origin, never where it redirects.
                let auth = |u: &Url| creds.clone().filter(|_| u.origin() == realm.origin());
                let resp = send_following(&self.http, req, auth, &label, self.stall).await?;
                if !resp.status().is_success() {
                    return Err(self.denied());
                }
                let body = read_bounded(resp, 1 << 20, "token", self.stall).await?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| Error::invalid(format!("registry {}: token: {e}", self.host)))?;
                let token =
                    v["token"].as_str().or(v["access_token"].as_str()).ok_or_else(|| self.denied())?;
                *self.auth.write().await = Auth::Bearer(token.to_string());
                Ok(())
            }
            _ => Err(self.denied()),
        }
    }

    fn status_error(&self, what: &str, status: StatusCode) -> Error {
        let code = match status {
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Code::PermissionDenied,
            s if s.is_client_error() => Code::FailedPrecondition,
            _ => Code::Unavailable,
        };
        Error::new(code, format!("registry {}: {what}: HTTP {status}", self.host))
    }

    /// A manifest or index by tag or digest: its bytes and the media type the registry gave.
    pub async fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let accept = [oci::OCI_INDEX, oci::OCI_MANIFEST, oci::DOCKER_LIST, oci::DOCKER_MANIFEST].join(", ");
        let url = self.url(&format!("manifests/{reference}"));
        let what = format!("manifest {}:{reference}", self.repo);
        let resp = self.send(&what, || self.http.get(&url).header(header::ACCEPT, &accept)).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&what, resp.status()));
        }
        let mt = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        Ok((read_bounded(resp, MAX_JSON, &what, self.stall).await?, mt))
    }

    /// A blob from byte `offset`: the response and where its body starts (0 if the registry
    /// ignored the range).
    pub async fn get_blob(&self, digest: &Digest, offset: u64) -> Result<(Response, u64)> {
        let url = self.url(&format!("blobs/{digest}"));
        let what = format!("blob {digest}");
        let resp = self
            .send(&what, || {
                let rb = self.http.get(&url);
                if offset > 0 { rb.header(header::RANGE, format!("bytes={offset}-")) } else { rb }
            })
            .await?;
        let label = format!("registry {}: {what}", self.host);
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => Ok((watchdog::guard(resp, self.stall, label), offset)),
            s if s.is_success() => Ok((watchdog::guard(resp, self.stall, label), 0)),
            s => Err(self.status_error(&what, s)),
        }
    }

    /// A small blob (a config), bounded and verified.
    pub async fn get_small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        if size > MAX_JSON {
            return Err(Error::invalid(format!(
                "blob {digest}: {size} bytes, over the {MAX_JSON}-byte bound"
            )));
        }
        let (resp, _) = self.get_blob(digest, 0).await?;
        let data = read_bounded(resp, size, &format!("blob {digest}"), self.stall).await?;
        if Digest::of(&data) != *digest || data.len() as u64 != size {
            return Err(Error::new(Code::DataLoss, format!("blob {digest}: bytes do not match the digest")));
        }
        Ok(data)
    }

    /// Does the registry have the blob?
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(&format!("blob {digest}"), || self.http.head(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(&format!("blob {digest}"), s)),
        }
    }

    /// Uploads a blob in one request after opening an upload session.
    pub async fn upload_blob(&self, digest: &Digest, size: u64, body: reqwest::Body) -> Result<()> {
        let what = format!("upload {digest}");
        let start = self.url("blobs/uploads/");
        let resp = self.send(&what, || self.http.post(&start).header(header::CONTENT_LENGTH, 0)).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&what, resp.status()));
        }
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::unavailable(format!("registry {}: {what}: no Location", self.host)))?;
        let base = reqwest::Url::parse(&self.base).map_err(|e| Error::internal(e.to_string()))?;
        let mut url = base.join(loc).map_err(|e| Error::unavailable(format!("{what}: bad Location: {e}")))?;
        if url.host_str() != base.host_str() || url.port_or_known_default() != base.port_or_known_default() {
            return Err(Error::unavailable(format!(
                "registry {}: {what}: upload location on another host",
                self.host
            )));
        }
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let rb = self
            .http
            .request(Method::PUT, url.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body);
        let auth = self.auth.read().await.clone();
        let rb = match self.authorization(&auth, &url) {
            Some(v) => rb.header(header::AUTHORIZATION, v),
            None => rb,
        };
        // The body may be large: no deadline on the upload and its answer (the stall
        // timeout bounds responses to small requests and the bodies of downloads); a
        // redirect is not followed (the body cannot be replayed) and fails as its status.
        let resp = rb.send().await.map_err(|e| {
            Error::unavailable(format!("registry {}: {what}: {}", self.host, watchdog::describe(&e)))
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(&what, resp.status()));
        }
        Ok(())
    }

    /// Puts a manifest or index under a tag or digest.
    pub async fn put_manifest(&self, reference: &str, media_type: &str, data: &[u8]) -> Result<()> {
        let url = self.url(&format!("manifests/{reference}"));
        let what = format!("manifest {}:{reference}", self.repo);
        let resp = self
            .send(&what, || self.http.put(&url).header(header::CONTENT_TYPE, media_type).body(data.to_vec()))
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&what, resp.status()));
        }
        Ok(())
    }
}

/// `Basic base64(user:password)`, marked sensitive (encoded by `reqwest` itself).
fn basic(http: &reqwest::Client, c: &Credentials) -> Option<HeaderValue> {
    let req = http.get("http://localhost/").basic_auth(&c.username, Some(&c.password)).build().ok()?;
    req.headers().get(header::AUTHORIZATION).cloned().map(sensitive)
}

fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

/// Reads a response body, refusing more than `max` bytes, and failing once the registry
/// stalls (see [`watchdog`]).
pub async fn read_bounded(mut resp: Response, max: u64, what: &str, stall: Duration) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|l| l > max) {
        return Err(Error::invalid(format!("{what}: over the {max}-byte bound")));
    }
    let mut out = Vec::new();
    let mut dog = Watchdog::new(stall);
    while let Some(chunk) = dog.chunk(&mut resp, what).await? {
        if (out.len() + chunk.len()) as u64 > max {
            return Err(Error::invalid(format!("{what}: over the {max}-byte bound")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `Bearer realm="x",service="y"` → (`Bearer`, {realm: x, service: y}).
pub fn parse_challenge(s: &str) -> (String, BTreeMap<String, String>) {
    let s = s.trim();
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (value, tail) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_string(), &v[end..]),
                None => (v.trim().to_string(), ""),
            }
        };
        params.insert(k, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "reg");
        assert_eq!(p["scope"], "repository:a:pull");
        assert_eq!(parse_challenge(r#"Basic realm="x""#).0, "Basic");
    }

    #[test]
    fn local_hosts_use_http() {
        assert!(is_local("localhost:5000"));
        assert!(is_local("127.0.0.1:41234"));
        assert!(!is_local("example.com:5000"));
        assert!(!is_local("docker.io"));
        assert!(!is_local("127.evil.example"));
    }

    fn creds() -> RegistryOptions {
        let credentials = Some(Credentials { username: "u".into(), password: "p".into() });
        RegistryOptions { credentials, plain_http: true, ..Default::default() }
    }

    #[test]
    fn credentials_are_refused_for_plain_http_off_loopback() {
        for host in ["127.evil.example", "reg.example:5000"] {
            let r = Reference::parse(&format!("{host}/a/b:1")).expect("ref");
            let e = Registry::new(&r, &creds(), false).err().expect("refused");
            assert!(e.message.contains("only over TLS") && e.message.contains(host), "{e:?}");
            assert!(!e.message.contains('p') || !e.message.contains(":p"), "{e:?}");
        }
        let r = Reference::parse("127.0.0.1:5000/a/b:1").expect("ref");
        assert!(Registry::new(&r, &creds(), false).is_ok());
        let r = Reference::parse("127.evil.example/a/b:1").expect("ref");
        let anon = RegistryOptions::default();
        assert!(Registry::new(&r, &anon, false).expect("anon").base.starts_with("https://"));
    }
}
