//! What one layer may cost the snapshot service: bytes written, extension-header size,
//! entries, and memory remembered per layer. Each is a setting of the `[snapshot]` config
//! section; an error over one names the setting (the unpack adds the layer's digest).

/// The per-layer limits of an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes read, and file bytes written (a sparse file at its full size).
    pub bytes: u64,
    /// One extension header (PAX record set, GNU long name or long link), bytes.
    pub header_bytes: u64,
    /// Entries in the layer.
    pub entries: u64,
    /// Bytes the extractor remembers for the layer (paths written, directories to stamp).
    pub memory_bytes: u64,
}

/// Default of [`Limits::header_bytes`] (1 MiB).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bytes: 64 << 30,
            header_bytes: MAX_HEADER_BYTES,
            entries: 4_000_000,
            memory_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The defaults with `bytes` as the byte cap.
    pub fn with_bytes(bytes: u64) -> Self {
        Limits { bytes, ..Limits::default() }
    }
}
