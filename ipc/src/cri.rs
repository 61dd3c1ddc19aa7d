//! The CRI service's berth-protocol side. `cri.sock` carries two protocols: the kubelet's
//! CRI v1 gRPC (HTTP/2, told apart by its connection preface) and berth's own framing, which
//! the launcher's health probes and metrics scrapes speak like on every other service.

use serde::{Deserialize, Serialize};

/// `Summary`: what the CRI service holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary;

/// Counts of the CRI service's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriSummary {
    /// Pod sandboxes, ready or not.
    pub sandboxes: u64,
    /// Containers in them.
    pub containers: u64,
}

/// The berth namespace of every CRI object.
pub const NAMESPACE: &str = "k8s.io";

crate::protocol! {
    /// The CRI service (`cri.sock`, berth framing).
    pub protocol Cri = "cri";
    request CriRequest; response CriResponse;
    /// Counts of sandboxes and containers. Always allowed.
    Summary(Summary) -> CriSummary [idempotent];
}
