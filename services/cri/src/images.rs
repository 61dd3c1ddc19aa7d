//! The image service: PullImage through berth's parallel pull and unpack, ImageStatus by id,
//! tag or digest, ListImages, RemoveImage (every name of the image), ImageFsInfo.
//!
//! A CRI image is what berth's image records in `k8s.io` resolve to, grouped by config
//! digest (the image id, `sha256:…`): its tag names are `repoTags`, its `repo@digest` names
//! `repoDigests`. A pull records both names, as containerd's CRI does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_client::pull::PullOptions;
use berth_client::reference::Reference;
use berth_client::registry::Credentials;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::metadata::{
    ByName, CreateImage, DeleteImage, GetImage, Image as BerthImage, ListImages, ListIn,
};
use berth_ipc::{Code, Digest, Error, Result};
use berth_oci::{Descriptor, Platform};
use k8s_cri::v1::{
    AuthConfig, FilesystemIdentifier, FilesystemUsage, Image, ImageSpec, Int64Value, UInt64Value,
};

use crate::{Cri, NAMESPACE};

/// Pulls in flight by name: a second pull of a name waits for the first, then finds every
/// blob stored (one download).
#[derive(Debug, Default)]
pub struct Pulls {
    by_name: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Pulls {
    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        berth_ipc::sync::lock(&self.by_name).entry(name.to_string()).or_default().clone()
    }
    fn done(&self, name: &str) {
        let mut map = berth_ipc::sync::lock(&self.by_name);
        if map.get(name).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(name);
        }
    }
}

/// One image as the CRI sees it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `sha256:…` of its config.
    pub id: String,
    /// The berth image records that resolve to it.
    pub names: Vec<String>,
    /// Layers + config + manifest, bytes.
    pub size: u64,
    /// The config's `User`.
    pub user: String,
    /// The config's `StopSignal` (empty: none).
    pub stop_signal: String,
}

/// What one image record resolves to.
struct Facts {
    id: String,
    size: u64,
    user: String,
    stop_signal: String,
}

impl Resolved {
    fn to_cri(&self) -> Image {
        let (digests, tags): (Vec<String>, Vec<String>) =
            self.names.iter().filter(|n| !n.starts_with("sha256:")).cloned().partition(|n| n.contains('@'));
        let (uid, username) = split_user(&self.user);
        Image {
            id: self.id.clone(),
            repo_tags: tags,
            repo_digests: digests,
            size: self.size,
            uid: uid.map(|value| Int64Value { value }),
            username,
            spec: Some(ImageSpec { image: self.id.clone(), ..ImageSpec::default() }),
            pinned: false,
        }
    }
}

/// An image config's `User` as CRI's uid (numeric user) or username.
fn split_user(user: &str) -> (Option<i64>, String) {
    let name = user.split(':').next().unwrap_or_default();
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) if name.is_empty() => (None, String::new()),
        Err(_) => (None, name.to_string()),
    }
}

/// The `repo@digest` name of a pulled image.
fn digest_name(r: &Reference, digest: &Digest) -> String {
    format!("{}/{}@{digest}", r.domain, r.path)
}

impl Cri {
    fn content(&self) -> ContentClient {
        ContentClient::new(self.services.content.clone())
    }

    /// Every image record of `k8s.io`.
    async fn records(&self) -> Result<Vec<BerthImage>> {
        let list = ListImages(ListIn { namespace: NAMESPACE.into(), filters: Vec::new() });
        let mut pages = self.services.metadata.stream(list).await?;
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page?);
        }
        Ok(out)
    }

    /// The config digest, size, user and stop signal of one record.
    async fn resolve_record(&self, image: &BerthImage) -> Result<Facts> {
        let t = &image.target;
        let root = Descriptor::new(&t.media_type, t.digest, t.size);
        let (r, _) = berth_oci::resolve::load(&self.content(), &root, &Platform::host())
            .await
            .map_err(|e| Error::new(e.code, format!("image {}: {}", image.name, e.message)))?;
        let size =
            r.manifest.layers.iter().map(|l| l.size).sum::<u64>() + r.manifest.config.size + r.desc.size;
        let config = serde_json::from_slice::<serde_json::Value>(&r.config_json).unwrap_or_default();
        let text = |field: &str| {
            config.pointer(field).and_then(|u| u.as_str()).map(str::to_string).unwrap_or_default()
        };
        Ok(Facts {
            id: r.manifest.config.digest.to_string(),
            size,
            user: text("/config/User"),
            stop_signal: text("/config/StopSignal"),
        })
    }

    /// Every CRI image, by id.
    pub async fn images(&self) -> Result<Vec<Resolved>> {
        let mut by_id: BTreeMap<String, Resolved> = BTreeMap::new();
        for record in self.records().await? {
            let Ok(f) = self.resolve_record(&record).await else { continue };
            by_id
                .entry(f.id.clone())
                .or_insert_with(|| Resolved {
                    id: f.id,
                    names: Vec::new(),
                    size: f.size,
                    user: f.user,
                    stop_signal: f.stop_signal,
                })
                .names
                .push(record.name);
        }
        Ok(by_id.into_values().collect())
    }

    /// The image `spec` names: an id (or unique id prefix), a tag or a digest reference.
    /// `None` when there is none.
    pub async fn find_image(&self, spec: &str) -> Result<Option<Resolved>> {
        if spec.is_empty() {
            return Err(Error::invalid("image: name must not be empty"));
        }
        let images = self.images().await?;
        let normalized = berth_client::reference::normalize(spec).ok();
        let id_like = spec.strip_prefix("sha256:").unwrap_or(spec);
        let by_name =
            images.iter().find(|i| i.names.iter().any(|n| n == spec || Some(n) == normalized.as_ref()));
        if let Some(found) = by_name {
            return Ok(Some(found.clone()));
        }
        if id_like.len() >= 6 && id_like.chars().all(|c| c.is_ascii_hexdigit()) {
            let hits: Vec<&Resolved> =
                images.iter().filter(|i| i.id.trim_start_matches("sha256:").starts_with(id_like)).collect();
            if let [one] = hits.as_slice() {
                return Ok(Some((*one).clone()));
            }
        }
        Ok(None)
    }

    /// `PullImage`: the image id.
    pub async fn pull_image(&self, image: &str, auth: Option<AuthConfig>) -> Result<String> {
        let r = Reference::parse(image)?;
        let name = r.to_string();
        let mut opts = PullOptions::default();
        opts.registry.credentials = credentials(auth)?;
        opts.registry.endpoint = self.registry.mirror(&r.domain).map_err(Error::invalid)?;
        let lock = self.pulls.lock_for(&name);
        let pulled = {
            let _one = lock.lock().await;
            berth_client::pull::pull(&self.services, NAMESPACE, &name, &opts).await
        };
        drop(lock);
        self.pulls.done(&name);
        let pulled = pulled.map_err(|e| e.context(format!("pull {image}")))?;
        let target = berth_ipc::metadata::Descriptor {
            media_type: pulled.target.media_type.clone(),
            digest: pulled.target.digest,
            size: pulled.target.size,
        };
        let by_digest = digest_name(&r, &pulled.target.digest);
        if by_digest != pulled.name {
            let record = BerthImage {
                name: by_digest,
                target: target.clone(),
                labels: BTreeMap::new(),
                created: 0,
                updated: 0,
            };
            match self
                .services
                .metadata
                .call(CreateImage { namespace: NAMESPACE.into(), image: record.clone() })
                .await
            {
                Err(e) if e.is(Code::AlreadyExists) => {
                    let update = berth_ipc::metadata::UpdateImage {
                        namespace: NAMESPACE.into(),
                        image: record,
                        paths: vec!["target".into()],
                    };
                    self.services.metadata.call(update).await?;
                }
                other => {
                    other?;
                }
            }
        }
        let record =
            BerthImage { name: pulled.name, target, labels: BTreeMap::new(), created: 0, updated: 0 };
        Ok(self.resolve_record(&record).await?.id)
    }

    /// `RemoveImage`: every name of the image; an unknown image is already removed.
    pub async fn remove_image(&self, spec: &str) -> Result<()> {
        let Some(image) = self.find_image(spec).await? else { return Ok(()) };
        for name in image.names {
            let req = DeleteImage { namespace: NAMESPACE.into(), name: name.clone(), sync: false };
            match self.services.metadata.call(req).await {
                Err(e) if !e.is(Code::NotFound) => return Err(e.context(format!("image {name}"))),
                _ => {}
            }
        }
        Ok(())
    }

    /// `ImageStatus`.
    pub async fn image_status(&self, spec: &str) -> Result<Option<Image>> {
        Ok(self.find_image(spec).await?.map(|i| i.to_cri()))
    }

    /// `ListImages`, optionally only those `filter` names.
    pub async fn list_images(&self, filter: Option<&str>) -> Result<Vec<Image>> {
        match filter.filter(|f| !f.is_empty()) {
            Some(f) => Ok(self.find_image(f).await?.map(|i| i.to_cri()).into_iter().collect()),
            None => Ok(self.images().await?.iter().map(Resolved::to_cri).collect()),
        }
    }

    /// `ImageFsInfo`: the content and snapshot stores under berth's root.
    pub async fn image_fs(&self) -> Vec<FilesystemUsage> {
        let root = self.root.clone();
        let now = berth_service_kit::time::now_ns();
        tokio::task::spawn_blocking(move || {
            ["content", "snapshots"]
                .iter()
                .map(|d| {
                    let path = root.join(d);
                    let (bytes, inodes) = disk_usage(&path);
                    FilesystemUsage {
                        timestamp: crate::records::ns_i64(now),
                        fs_id: Some(FilesystemIdentifier { mountpoint: path.display().to_string() }),
                        used_bytes: Some(UInt64Value { value: bytes }),
                        inodes_used: Some(UInt64Value { value: inodes }),
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The berth image name of `spec` (for a container's record), its id and stop signal.
    /// A name is looked up directly (one record resolved, not every image); an id or id
    /// prefix needs the whole list.
    pub async fn image_for_container(&self, spec: &str) -> Result<(String, String, String)> {
        if spec.is_empty() {
            return Err(Error::invalid("image: name must not be empty"));
        }
        let normalized = berth_client::reference::normalize(spec).ok();
        for name in std::iter::once(spec).chain(normalized.as_deref()) {
            let by_name = ByName { namespace: NAMESPACE.into(), name: name.to_string() };
            match self.services.metadata.call(GetImage(by_name)).await {
                Ok(record) => {
                    let f = self.resolve_record(&record).await?;
                    return Ok((record.name, f.id, f.stop_signal));
                }
                Err(e) if e.is(Code::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let image = self
            .find_image(spec)
            .await?
            .ok_or_else(|| Error::not_found(format!("image {spec}: not found (pull it first)")))?;
        let name = image
            .names
            .first()
            .cloned()
            .ok_or_else(|| Error::not_found(format!("image {spec}: has no name")))?;
        Ok((name, image.id, image.stop_signal))
    }
}

/// Registry credentials from a CRI auth config (user/password, or `auth` base64).
fn credentials(auth: Option<AuthConfig>) -> Result<Option<Credentials>> {
    let Some(a) = auth else { return Ok(None) };
    if !a.username.is_empty() {
        return Ok(Some(Credentials { username: a.username, password: a.password }));
    }
    if !a.auth.is_empty() {
        let decoded =
            base64_decode(&a.auth).ok_or_else(|| Error::invalid("auth config: auth is not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| Error::invalid("auth config: auth is not UTF-8"))?;
        let (u, p) =
            text.split_once(':').ok_or_else(|| Error::invalid("auth config: auth is not user:password"))?;
        return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
    }
    if !a.identity_token.is_empty() || !a.registry_token.is_empty() {
        return Err(Error::new(
            Code::Unimplemented,
            "auth config: identity and registry tokens are not supported",
        ));
    }
    Ok(None)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHA.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Bytes and inodes under `path` (not following links).
fn disk_usage(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_split_into_uid_or_name() {
        assert_eq!(split_user("1000:1000"), (Some(1000), String::new()));
        assert_eq!(split_user("nobody"), (None, "nobody".to_string()));
        assert_eq!(split_user(""), (None, String::new()));
    }

    #[test]
    fn basic_auth_decodes() {
        let a = AuthConfig { auth: "dXNlcjpwYXNz".into(), ..AuthConfig::default() };
        let c = credentials(Some(a)).expect("ok").expect("some");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
    }
}
