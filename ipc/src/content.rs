//! The `content` service's wire vocabulary. Its duties arrive with their issue; until then it
//! answers only the common calls (`Health`, `Metrics`).

crate::protocol! {
    /// The content service (`content.sock`).
    pub protocol Content = "content";
    request ContentRequest; response ContentResponse;
}
