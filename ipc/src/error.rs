//! The closed set of error codes that travel on the wire, and the error type built on them.
//!
//! The codes are modelled on containerd's errdefs. Clients branch on [`Code`], never on the
//! message text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a call failed. The set is closed: a new code is a protocol change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Code {
    /// The named object does not exist.
    NotFound,
    /// An object with that name or digest already exists.
    AlreadyExists,
    /// The request itself is malformed: a bad name, digest, filter or field.
    InvalidArgument,
    /// The request is well formed but the object is not in a state that allows it.
    FailedPrecondition,
    /// The service (or a resource it needs) is not available now; retrying may succeed.
    Unavailable,
    /// An offset or size lies outside the valid range.
    OutOfRange,
    /// Another operation holds the object.
    Conflict,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// Stored data is lost or corrupt.
    DataLoss,
    /// The service does not implement this call.
    Unimplemented,
    /// A bug or an unexpected failure inside the service.
    Internal,
}

impl Code {
    /// Every code, in wire order.
    pub const ALL: [Code; 11] = [
        Code::NotFound,
        Code::AlreadyExists,
        Code::InvalidArgument,
        Code::FailedPrecondition,
        Code::Unavailable,
        Code::OutOfRange,
        Code::Conflict,
        Code::PermissionDenied,
        Code::DataLoss,
        Code::Unimplemented,
        Code::Internal,
    ];

    /// The code's name as it appears in logs and in the CLI's output.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "not found",
            Code::AlreadyExists => "already exists",
            Code::InvalidArgument => "invalid argument",
            Code::FailedPrecondition => "failed precondition",
            Code::Unavailable => "unavailable",
            Code::OutOfRange => "out of range",
            Code::Conflict => "conflict",
            Code::PermissionDenied => "permission denied",
            Code::DataLoss => "data loss",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it travels on the wire: a code and a short message naming the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What kind of failure this is.
    pub code: Code,
    /// A short lowercase phrase naming the object and the problem.
    pub message: String,
}

impl Error {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// `NotFound` with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(Code::NotFound, message)
    }

    /// `AlreadyExists` with a message.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(Code::AlreadyExists, message)
    }

    /// `InvalidArgument` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidArgument, message)
    }

    /// `FailedPrecondition` with a message.
    pub fn precondition(message: impl Into<String>) -> Self {
        Error::new(Code::FailedPrecondition, message)
    }

    /// `Unavailable` with a message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(Code::Unavailable, message)
    }

    /// `Internal` with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Code::Internal, message)
    }

    /// Whether this error has the given code.
    pub fn is(&self, code: Code) -> bool {
        self.code == code
    }

    /// An I/O failure on `what` (e.g. `"read sha256:…"`): the message is `what: cause`, so logs
    /// keep the cause's text, and the code follows the cause (see `From<io::Error>`).
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(io_code(&err), format!("{what}: {err}"))
    }

    /// [`Error::io`] on a path: the message is `what path: cause`.
    pub fn io_at(what: impl fmt::Display, path: &std::path::Path, err: std::io::Error) -> Self {
        Error::io(format_args!("{what} {}", path.display()), err)
    }

    /// The same error with `context: ` put in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error { code: self.code, message: format!("{context}: {}", self.message) }
    }

    /// The same error with `: cause` after its message: the underlying failure that explains
    /// it. The cause travels inside the message (the wire form stays `{ code, message }`), so
    /// logs and the CLI show it and older peers read it unchanged.
    pub fn with_cause(self, cause: impl fmt::Display) -> Self {
        Error { code: self.code, message: format!("{}: {cause}", self.message) }
    }

    /// `Internal` for `what` failing because of `cause`: the message is `what: cause`.
    pub fn internal_cause(what: impl fmt::Display, cause: impl fmt::Display) -> Self {
        Error::internal(format!("{what}: {cause}"))
    }
}

/// The wire code of an I/O failure: missing, existing, forbidden and malformed map to their
/// codes; a broken peer, a time-out and a full disk or quota are `Unavailable` (retrying may
/// succeed); anything else is `Internal`.
fn io_code(err: &std::io::Error) -> Code {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::InvalidInput | ErrorKind::InvalidData => Code::InvalidArgument,
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected
        | ErrorKind::TimedOut
        | ErrorKind::UnexpectedEof
        | ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded => Code::Unavailable,
        _ => Code::Internal,
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::new(io_code(&err), err.to_string())
    }
}

/// The result type of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_distinct_names() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }

    #[test]
    fn io_errors_keep_their_cause_and_code() {
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Error::io_at("open", std::path::Path::new("/x/blob"), gone);
        assert_eq!(e.code, Code::NotFound);
        assert!(e.message.starts_with("open /x/blob: "), "{e}");
        assert!(e.message.len() > "open /x/blob: ".len(), "{e}");
        for full in [libc_errno(28), libc_errno(122)] {
            assert_eq!(Error::io("write", full).code, Code::Unavailable);
        }
        let odd = std::io::Error::other("odd");
        assert_eq!(Error::io("sync", odd), Error::internal("sync: odd"));
    }

    fn libc_errno(n: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(n)
    }

    #[test]
    fn a_cause_follows_the_message_and_keeps_the_code() {
        let e = Error::unavailable("blob sha256:ab").with_cause("connection reset");
        assert_eq!(e, Error::unavailable("blob sha256:ab: connection reset"));
        let e = Error::internal_cause(format_args!("mount {}", "/x"), std::io::Error::other("busy"));
        assert_eq!(e, Error::internal("mount /x: busy"));
        assert_eq!(
            Error::internal_cause("spec", "bad").with_cause("deeper").to_string(),
            "spec: bad: deeper"
        );
    }

    #[test]
    fn context_keeps_code() {
        let e = Error::not_found("blob sha256:ab").context("read");
        assert_eq!(e.code, Code::NotFound);
        assert_eq!(e.to_string(), "read: blob sha256:ab");
    }
}
