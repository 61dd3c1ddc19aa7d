//! berth's image and mount semantics, in one place for every consumer (the client's pull,
//! import, unpack and `images mount`; the runtime service's container create; the snapshot
//! service's diff; the CRI service):
//!
//! - [`media`] — media types and [`MAX_JSON`], the one cap on every JSON document;
//! - [`platform`] — `os/arch[/variant]`, normalized, matched and ordered as containerd's;
//! - [`document`] — descriptors, indexes, manifests, configs, parsed and validated;
//! - [`config_check`] — hostile `User`, `WorkingDir`, `Volumes` refused on the way in;
//! - [`resolve`] — index → manifest → config, the platform choice, chain IDs;
//! - [`mount`] — applying and removing a snapshot's mount list;
//! - [`signal`] — signal names, as a config's `StopSignal` gives them.
//!
//! The crate sits between `ipc` (whose wire types it reads) and its users.

pub mod config_check;
pub mod document;
pub mod media;
pub mod mount;
pub mod platform;
pub mod resolve;
pub mod signal;

pub use document::*;
pub use media::*;
pub use platform::Platform;
