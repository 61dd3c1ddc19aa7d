//! The snapshotter interface shared by the in-process service ([`Local`]) and the socket
//! client ([`Remote`]), so one conformance suite runs against both: every call is a wire
//! request paired with its reply, answered either by [`SnapshotService::dispatch`] or by
//! the service at the other end of a socket.

use std::future::Future;

use berth_ipc::snapshot::Snapshot;
use berth_ipc::{Call, Client, Error, Result};

use crate::service::SnapshotService;

/// A snapshot service, near or far.
pub trait Snapshotter: Send + Sync {
    /// Makes one call.
    fn call<C: Call<Protocol = Snapshot>>(&self, req: C) -> impl Future<Output = Result<C::Reply>> + Send;
}

/// The service in this process.
#[derive(Clone)]
pub struct Local(pub SnapshotService);

impl Snapshotter for Local {
    async fn call<C: Call<Protocol = Snapshot>>(&self, req: C) -> Result<C::Reply> {
        let resp = self.0.dispatch(req.into_request()).await?;
        C::from_response(resp).ok_or_else(|| Error::internal("snapshot: reply of the wrong type"))
    }
}

/// The service behind a socket.
#[derive(Clone)]
pub struct Remote(pub Client<Snapshot>);

impl Snapshotter for Remote {
    async fn call<C: Call<Protocol = Snapshot>>(&self, req: C) -> Result<C::Reply> {
        self.0.call(req).await
    }
}
