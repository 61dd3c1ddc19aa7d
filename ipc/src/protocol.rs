//! What a service speaks: the [`Protocol`] trait that ties a service's request and response
//! enums together, the [`Call`] trait that pairs each request with its reply at the type
//! level, the handshake messages, and the calls every service answers ([`CommonRequest`]).
//!
//! Service protocols are declared with [`crate::protocol!`], which writes the enums and the
//! pairings from one list.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::metrics::MetricsSnapshot;

/// A service's wire vocabulary.
pub trait Protocol: Send + Sync + 'static {
    /// The service's name, as in `Hello.service` and the socket file name.
    const NAME: &'static str;
    /// Every request the service answers.
    type Request: Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static;
    /// Every response (or stream item) it sends.
    type Response: Serialize + DeserializeOwned + Send + Sync + std::fmt::Debug + 'static;
    /// The request's method name, for metrics and logs.
    fn method(req: &Self::Request) -> &'static str;
}

/// A request type paired with its reply.
pub trait Call: Serialize + Clone + Send + Sync + 'static {
    /// The protocol this request belongs to.
    type Protocol: Protocol;
    /// The reply (or, for a streaming call, the type of each item).
    type Reply: Send + 'static;
    /// Whether repeating the call is harmless, so a client may retry it after a lost
    /// connection.
    const IDEMPOTENT: bool;
    /// Whether the answer is a stream of items.
    const STREAMING: bool;
    /// Wraps the request in its protocol's enum.
    fn into_request(self) -> <Self::Protocol as Protocol>::Request;
    /// Unwraps the matching response; `None` if the service answered another variant.
    fn from_response(resp: <Self::Protocol as Protocol>::Response) -> Option<Self::Reply>;
}

/// The body of a `Request` frame: a call every service answers, or one of the service's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RequestBody<R> {
    /// Answered by the server scaffold itself.
    Common(CommonRequest),
    /// Answered by the service.
    Service(R),
}

/// The body of a `Response` or `StreamItem` frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ResponseBody<R> {
    /// Answer to a [`CommonRequest`].
    Common(CommonResponse),
    /// Answer from the service.
    Service(R),
}

/// Calls every service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CommonRequest {
    /// Name, version, pid and uptime. Always allowed; the launcher pings with it.
    Health,
    /// Request counts, errors and latency per method. Always allowed.
    Metrics,
}

/// Answers to [`CommonRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CommonResponse {
    /// Answer to `Health`.
    Health(Health),
    /// Answer to `Metrics`.
    Metrics(MetricsSnapshot),
}

/// A service's answer to `Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The service name (`content`, `events`, …).
    pub name: String,
    /// The service's version (the crate version).
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Milliseconds since it started serving.
    pub uptime_ms: u64,
}

/// First frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks (same as the frame header's).
    pub protocol: u32,
    /// The service the client expects to reach.
    pub service: String,
    /// Free text naming the client, for the service's logs.
    pub client_name: String,
}

/// A service's answer to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the service speaks.
    pub protocol: u32,
    /// The service's name.
    pub service: String,
    /// The service's version.
    pub version: String,
    /// The service's process id.
    pub pid: u32,
}

#[doc(hidden)]
#[macro_export]
macro_rules! __flag {
    (idempotent, idempotent) => {
        true
    };
    (stream, stream) => {
        true
    };
    ($want:ident, $have:ident) => {
        false
    };
}

/// Declares a service protocol: the marker type, its `Request` and `Response` enums, and a
/// [`Call`] impl per request type pairing it with its reply.
///
/// ```ignore
/// berth_ipc::protocol! {
///     /// The content service.
///     pub protocol Content = "content";
///     request ContentRequest; response ContentResponse;
///     /// Blob info. Allowed always.
///     Info(InfoRequest) -> BlobInfo [idempotent];
///     /// Blob bytes, streamed.
///     Read(ReadRequest) -> Chunk [idempotent, stream];
/// }
/// ```
#[macro_export]
macro_rules! protocol {
    (
        $(#[$pmeta:meta])*
        pub protocol $proto:ident = $name:literal;
        request $req_enum:ident; response $resp_enum:ident;
        $(
            $(#[$vmeta:meta])*
            $variant:ident ( $req:ty ) -> $reply:ty [ $($flag:ident),* ];
        )*
    ) => {
        $(#[$pmeta])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $proto;

        #[doc = concat!("Every request the `", $name, "` service answers.")]
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(clippy::large_enum_variant)]
        pub enum $req_enum {
            $( $(#[$vmeta])* $variant($req), )*
        }

        #[doc = concat!("Every response of the `", $name, "` service; variants match the requests.")]
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(clippy::large_enum_variant)]
        pub enum $resp_enum {
            $( #[doc = concat!("Answer to `", stringify!($variant), "`.")] $variant($reply), )*
        }

        impl $crate::Protocol for $proto {
            const NAME: &'static str = $name;
            type Request = $req_enum;
            type Response = $resp_enum;
            #[allow(unused_variables, unreachable_code)]
            fn method(req: &$req_enum) -> &'static str {
                match *req {
                    $( $req_enum::$variant(_) => stringify!($variant), )*
                }
            }
        }

        $(
            impl $crate::Call for $req {
                type Protocol = $proto;
                type Reply = $reply;
                const IDEMPOTENT: bool = false $( || $crate::__flag!(idempotent, $flag) )*;
                const STREAMING: bool = false $( || $crate::__flag!(stream, $flag) )*;
                fn into_request(self) -> $req_enum {
                    $req_enum::$variant(self)
                }
                #[allow(unreachable_patterns)]
                fn from_response(resp: $resp_enum) -> Option<$reply> {
                    match resp {
                        $resp_enum::$variant(r) => Some(r),
                        _ => None,
                    }
                }
            }
        )*
    };
}
