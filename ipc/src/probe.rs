//! A one-shot health probe of any service by name, on a fresh connection: what the launcher
//! uses to tell a live service from a hung one. Unlike [`crate::Client`] it never retries and
//! does not need the service's protocol type.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, Kind};
use crate::protocol::{CommonRequest, CommonResponse, Health, Hello, RequestBody, ResponseBody};

/// Connects to `socket`, says hello to `service`, asks `Health`, all within `timeout`.
pub async fn probe(socket: &Path, service: &str, timeout: Duration) -> Result<Health> {
    match tokio::time::timeout(timeout, probe_inner(socket, service)).await {
        Ok(r) => r,
        Err(_) => Err(Error::unavailable(format!("{service}: no answer within {timeout:?}"))),
    }
}

async fn probe_inner(socket: &Path, service: &str) -> Result<Health> {
    let stream = UnixStream::connect(socket).await.map_err(|e| Error::from(e).context(service))?;
    let (read_half, mut write_half) = stream.into_split();
    let hello = Hello {
        protocol: u32::from(frame::PROTOCOL_VERSION),
        service: service.to_string(),
        client_name: format!("probe[{}]", std::process::id()),
    };
    let mut buf = Vec::new();
    frame::put_frame(&mut buf, Kind::Hello, 0, &codec::encode(&hello)?);
    // The request body's service part is never present, so any type serves for it.
    let body: RequestBody<()> = RequestBody::Common(CommonRequest::Health);
    frame::put_frame(&mut buf, Kind::Request, 1, &codec::encode(&body)?);
    write_half.write_all(&buf).await.map_err(|e| Error::from(e).context(service))?;
    let mut reader = BufReader::new(read_half);
    loop {
        let f = frame::read_frame(&mut reader, frame::MAX_FRAME_LEN)
            .await
            .map_err(|e| e.to_wire().context(service))?;
        match f.header.kind {
            Kind::Welcome => continue,
            Kind::Response => {
                return match codec::decode::<ResponseBody<()>>(&f.payload)? {
                    ResponseBody::Common(CommonResponse::Health(h)) => Ok(h),
                    _ => Err(Error::internal(format!("{service}: health reply of the wrong type"))),
                };
            }
            Kind::Error => return Err(codec::decode::<Error>(&f.payload)?.context(service)),
            other => return Err(Error::internal(format!("{service}: unexpected {other:?} frame"))),
        }
    }
}
