//! OCI and Docker image JSON: the [`berth_oci`] crate, re-exported where the client's
//! modules and users have always found it.

pub use berth_oci::*;
