//! The `metadata` service's wire vocabulary. Its duties arrive with their issue; until then it
//! answers only the common calls (`Health`, `Metrics`).

crate::protocol! {
    /// The metadata service (`metadata.sock`).
    pub protocol Metadata = "metadata";
    request MetadataRequest; response MetadataResponse;
}
