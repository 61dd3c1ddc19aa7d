//! The `runtime` service's wire vocabulary. Its duties arrive with their issue; until then it
//! answers only the common calls (`Health`, `Metrics`).

crate::protocol! {
    /// The runtime service (`runtime.sock`).
    pub protocol Runtime = "runtime";
    request RuntimeRequest; response RuntimeResponse;
}
