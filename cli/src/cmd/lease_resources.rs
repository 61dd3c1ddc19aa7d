//! `berth leases add-resource|rm-resource|resources`: what a lease protects, named as
//! containerd's `ctr leases` names it (`content DIGEST`, `snapshots/<snapshotter> KEY`,
//! `ingests REF`).

use berth_ipc::Digest;
use berth_ipc::metadata::{
    AddLeaseResource, ByName, LeaseResource, LeaseResourceRequest, ListLeaseResources, RemoveLeaseResource,
};

use super::Ctx;
use super::namespaces::wire;
use crate::output::{self, Format};

/// A resource from its type and id, as the user typed them.
pub fn parse(kind: &str, id: &str) -> anyhow::Result<LeaseResource> {
    anyhow::ensure!(!id.is_empty(), "lease resource {kind}: the id must not be empty");
    match kind {
        "content" => {
            let digest: Digest = id
                .parse()
                .map_err(|e| anyhow::anyhow!("lease resource content {id:?}: not a digest: {e}"))?;
            Ok(LeaseResource::Content(digest))
        }
        "ingests" | "ingest" => Ok(LeaseResource::Ingest(id.to_string())),
        _ => match kind.strip_prefix("snapshots/") {
            Some(snapshotter) if !snapshotter.is_empty() && !snapshotter.contains('/') => {
                Ok(LeaseResource::Snapshot { snapshotter: snapshotter.to_string(), key: id.to_string() })
            }
            _ => anyhow::bail!(
                "lease resource type {kind:?}: unknown (content, snapshots/<snapshotter>, ingests)"
            ),
        },
    }
}

/// A resource's type and id, as [`parse`] reads them.
pub fn show(r: &LeaseResource) -> (String, String) {
    match r {
        LeaseResource::Content(d) => ("content".into(), d.to_string()),
        LeaseResource::Ingest(r) => ("ingests".into(), r.clone()),
        LeaseResource::Snapshot { snapshotter, key } => (format!("snapshots/{snapshotter}"), key.clone()),
    }
}

/// Adds (`add`) or removes a resource of lease `lease`.
pub async fn change(ctx: &Ctx, lease: String, kind: &str, id: &str, add: bool) -> anyhow::Result<()> {
    let req = LeaseResourceRequest {
        namespace: ctx.namespace.clone(),
        lease: lease.clone(),
        resource: parse(kind, id)?,
    };
    let md = &ctx.services.metadata;
    let done =
        if add { md.call(AddLeaseResource(req)).await } else { md.call(RemoveLeaseResource(req)).await };
    done.map_err(|e| wire(e).context(format!("lease {lease}")))
}

/// Prints a lease's resources (`TYPE ID`; JSON: `[{"type", "id"}]`).
pub async fn list(ctx: &Ctx, lease: String) -> anyhow::Result<()> {
    let by = ByName { namespace: ctx.namespace.clone(), name: lease.clone() };
    let list = ctx
        .services
        .metadata
        .call(ListLeaseResources(by))
        .await
        .map_err(|e| wire(e).context(format!("lease {lease}")))?;
    let rows: Vec<(String, String)> = list.iter().map(show).collect();
    match ctx.format {
        Format::Json => {
            let json: Vec<_> = rows.iter().map(|(t, i)| serde_json::json!({"type": t, "id": i})).collect();
            output::json(&json)
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = rows.into_iter().map(|(t, i)| vec![t, i]).collect();
            output::table(&["TYPE", "ID"], &rows);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_as_containerd_names_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(show(&parse("content", &d).expect("content")), ("content".into(), d.clone()));
        let s = parse("snapshots/overlayfs", "k1").expect("snapshot");
        assert_eq!(s, LeaseResource::Snapshot { snapshotter: "overlayfs".into(), key: "k1".into() });
        assert_eq!(show(&s).0, "snapshots/overlayfs");
        assert_eq!(parse("ingests", "r1").expect("ingest"), LeaseResource::Ingest("r1".into()));
        let e = parse("blobs", "x").expect_err("unknown").to_string();
        assert!(e.contains("\"blobs\": unknown (content, snapshots/<snapshotter>, ingests)"), "{e}");
        assert!(parse("snapshots/", "k").is_err());
        assert!(parse("content", "sha256:zz").expect_err("bad").to_string().contains("not a digest"));
    }
}
