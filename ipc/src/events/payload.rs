//! The typed payload of every topic: one struct per topic (named like containerd's event
//! types), the [`Payload`] enum that carries any of them, and the topic constants.
//!
//! A topic is `/` followed by identifier parts separated by `/`. The set is closed: a
//! publisher cannot invent topics, and a new topic is a protocol change (a variant added at
//! the end of [`Payload`], never in between).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Declares the payload structs, the `Payload` enum (variants in wire order), the topic of
/// each struct and the topic constants.
macro_rules! payloads {
    ($(
        $(#[$smeta:meta])*
        $name:ident = $const:ident $topic:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        /// Topic constants, one per payload type.
        pub mod topics {
            $(
                #[doc = concat!("`", $topic, "`")]
                pub const $const: &str = $topic;
            )*
            /// Every topic, in wire order of [`super::Payload`].
            pub const ALL: &[&str] = &[$($topic),*];
        }

        $(
            $(#[$smeta])*
            #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name {
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl $name {
                /// The topic this payload is published on.
                pub const TOPIC: &'static str = $topic;
            }

            impl From<$name> for Payload {
                fn from(p: $name) -> Payload {
                    Payload::$name(p)
                }
            }
        )*

        /// Any event's payload. Variants are in wire order: new ones go at the end.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Payload {
            $(
                #[doc = concat!("On `", $topic, "`.")]
                $name($name),
            )*
        }

        impl Payload {
            /// The topic this payload belongs to.
            pub fn topic(&self) -> &'static str {
                match self {
                    $( Payload::$name(_) => $topic, )*
                }
            }

            /// The type's name (`TaskExit`), as in containerd.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Payload::$name(_) => stringify!($name), )*
                }
            }

            /// The payload as a JSON object of its fields (for filters on `event.<field>`
            /// and for JSON output).
            pub fn to_json(&self) -> serde_json::Value {
                let v = match self {
                    $( Payload::$name(p) => serde_json::to_value(p), )*
                };
                v.unwrap_or(serde_json::Value::Null)
            }
        }
    };
}

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A mount of a task's root filesystem, as reported on `/tasks/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMount {
    /// Mount type (`overlay`, `bind`).
    pub kind: String,
    /// Source.
    pub source: String,
    /// Mount options.
    pub options: Vec<String>,
}

payloads! {
    /// A namespace was created.
    NamespaceCreate = NAMESPACE_CREATE "/namespaces/create" {
        /// Namespace name.
        name: String,
        /// Its labels.
        labels: Labels,
    }
    /// A namespace's labels changed.
    NamespaceUpdate = NAMESPACE_UPDATE "/namespaces/update" {
        /// Namespace name.
        name: String,
        /// Its labels after the change.
        labels: Labels,
    }
    /// A namespace was removed.
    NamespaceDelete = NAMESPACE_DELETE "/namespaces/delete" {
        /// Namespace name.
        name: String,
    }
    /// An image record was created.
    ImageCreate = IMAGE_CREATE "/images/create" {
        /// Image name (`docker.io/library/alpine:latest`).
        name: String,
        /// Its labels.
        labels: Labels,
    }
    /// An image record changed (target or labels).
    ImageUpdate = IMAGE_UPDATE "/images/update" {
        /// Image name.
        name: String,
        /// Its labels after the change.
        labels: Labels,
    }
    /// An image record was removed.
    ImageDelete = IMAGE_DELETE "/images/delete" {
        /// Image name.
        name: String,
    }
    /// A container record was created.
    ContainerCreate = CONTAINER_CREATE "/containers/create" {
        /// Container id.
        id: String,
        /// Image name.
        image: String,
        /// Runtime name (`runc`, `crun`).
        runtime: String,
    }
    /// A container record changed.
    ContainerUpdate = CONTAINER_UPDATE "/containers/update" {
        /// Container id.
        id: String,
        /// Image name.
        image: String,
        /// Its labels after the change.
        labels: Labels,
        /// Its snapshot key.
        snapshot_key: String,
    }
    /// A container record was removed.
    ContainerDelete = CONTAINER_DELETE "/containers/delete" {
        /// Container id.
        id: String,
    }
    /// A blob was committed to content.
    ContentCreate = CONTENT_CREATE "/content/create" {
        /// `sha256:<hex>`.
        digest: String,
        /// Size in bytes.
        size: u64,
    }
    /// A blob was deleted from content.
    ContentDelete = CONTENT_DELETE "/content/delete" {
        /// `sha256:<hex>`.
        digest: String,
    }
    /// An active snapshot was prepared.
    SnapshotPrepare = SNAPSHOT_PREPARE "/snapshot/prepare" {
        /// Snapshot key.
        key: String,
        /// Parent's name, empty for none.
        parent: String,
        /// Snapshotter (`overlayfs`, `native`).
        snapshotter: String,
    }
    /// An active snapshot was committed under a name.
    SnapshotCommit = SNAPSHOT_COMMIT "/snapshot/commit" {
        /// Active key.
        key: String,
        /// Committed name.
        name: String,
        /// Snapshotter.
        snapshotter: String,
    }
    /// A snapshot was removed.
    SnapshotRemove = SNAPSHOT_REMOVE "/snapshot/remove" {
        /// Snapshot key.
        key: String,
        /// Snapshotter.
        snapshotter: String,
    }
    /// A task was created (its init process exists, not started).
    TaskCreate = TASK_CREATE "/tasks/create" {
        /// Container id.
        container_id: String,
        /// Bundle directory.
        bundle: String,
        /// Root filesystem mounts.
        rootfs: Vec<EventMount>,
        /// Init process pid.
        pid: u32,
    }
    /// A task's init process started.
    TaskStart = TASK_START "/tasks/start" {
        /// Container id.
        container_id: String,
        /// Init process pid.
        pid: u32,
    }
    /// A process of a task exited (the init process when `id` equals `container_id`).
    TaskExit = TASK_EXIT "/tasks/exit" {
        /// Container id.
        container_id: String,
        /// Process id within the task (exec id, or the container id for init).
        id: String,
        /// Its pid.
        pid: u32,
        /// Exit status (128 + signal for a signalled process).
        exit_status: u32,
        /// Exit time, unix nanoseconds.
        exited_at: u64,
    }
    /// A task was deleted.
    TaskDelete = TASK_DELETE "/tasks/delete" {
        /// Container id.
        container_id: String,
        /// Process id within the task.
        id: String,
        /// Init pid.
        pid: u32,
        /// Exit status.
        exit_status: u32,
        /// Exit time, unix nanoseconds.
        exited_at: u64,
    }
    /// A task was paused.
    TaskPaused = TASK_PAUSED "/tasks/paused" {
        /// Container id.
        container_id: String,
    }
    /// A paused task was resumed.
    TaskResumed = TASK_RESUMED "/tasks/resumed" {
        /// Container id.
        container_id: String,
    }
    /// A task hit its memory limit.
    TaskOom = TASK_OOM "/tasks/oom" {
        /// Container id.
        container_id: String,
    }
    /// An exec process was added to a task.
    TaskExecAdded = TASK_EXEC_ADDED "/tasks/exec-added" {
        /// Container id.
        container_id: String,
        /// Exec id.
        exec_id: String,
    }
    /// An exec process started.
    TaskExecStarted = TASK_EXEC_STARTED "/tasks/exec-started" {
        /// Container id.
        container_id: String,
        /// Exec id.
        exec_id: String,
        /// Its pid.
        pid: u32,
    }
    /// The launcher started a service and it became ready.
    ServiceStarted = SERVICE_STARTED "/services/started" {
        /// Service name.
        name: String,
        /// Its pid.
        pid: u32,
    }
    /// A supervised service exited.
    ServiceExited = SERVICE_EXITED "/services/exited" {
        /// Service name.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended (`exit status 1`, `signal 9 (SIGKILL)`).
        status: String,
    }
    /// The launcher restarted a service after an exit.
    ServiceRestarted = SERVICE_RESTARTED "/services/restarted" {
        /// Service name.
        name: String,
        /// The new pid.
        pid: u32,
        /// Restarts so far.
        restarts: u32,
    }
    /// A service failed to start too often and was marked failed (it is retried on the
    /// slow schedule, announced by `/services/retrying`).
    ServiceFailed = SERVICE_FAILED "/services/failed" {
        /// Service name.
        name: String,
        /// Restarts in the window.
        restarts: u32,
        /// Why it was marked failed.
        reason: String,
    }
    /// The launcher tries a failed service again (its slow retry schedule).
    ServiceRetrying = SERVICE_RETRYING "/services/retrying" {
        /// Service name.
        name: String,
        /// Retries since it was marked failed, this one included.
        attempt: u32,
    }
}
