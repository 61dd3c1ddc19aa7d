//! The `events` service's wire vocabulary. Its duties arrive with their issue; until then it
//! answers only the common calls (`Health`, `Metrics`).

crate::protocol! {
    /// The events service (`events.sock`).
    pub protocol Events = "events";
    request EventsRequest; response EventsResponse;
}
