//! The `snapshot` service's wire vocabulary. Its duties arrive with their issue; until then it
//! answers only the common calls (`Health`, `Metrics`).

crate::protocol! {
    /// The snapshot service (`snapshot.sock`).
    pub protocol Snapshot = "snapshot";
    request SnapshotRequest; response SnapshotResponse;
}
