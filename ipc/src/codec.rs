//! Payload encoding: bincode 2 in its standard configuration (little-endian, variable-length
//! integers), always with a size limit so that a hostile length prefix inside a payload
//! cannot make the decoder allocate more than a frame may hold.
//!
//! For outside programs: integers are varints (a value below 251 is one byte; 251 = u16
//! follows, 252 = u32, 253 = u64, 254 = u128, all little-endian); strings and byte vectors
//! are a varint length then the bytes; `Option` is a byte 0/1 then the value; an enum is a
//! varint variant index then its fields in order; a struct is its fields in order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::frame::MAX_FRAME_LEN;

const LIMIT: usize = MAX_FRAME_LEN as usize;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes a payload. Fails with `OutOfRange` when it would not fit in a frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| Error::internal_cause("encode payload", e))?;
    if bytes.len() > LIMIT {
        return Err(Error::new(
            crate::Code::OutOfRange,
            format!("payload of {} bytes exceeds the frame limit of {LIMIT}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Decodes a payload that must be consumed exactly. Fails with `InvalidArgument`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| Error::invalid(format!("undecodable payload: {e}")))?;
    if used != bytes.len() {
        return Err(Error::invalid(format!("undecodable payload: {} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wire_bytes() {
        let v: (u32, String, Option<u8>) = (300, "ab".into(), Some(7));
        let bytes = encode(&v).expect("encode");
        assert_eq!(bytes, [251, 0x2c, 0x01, 2, b'a', b'b', 1, 7]);
        let back: (u32, String, Option<u8>) = decode(&bytes).expect("decode");
        assert_eq!(back, v);
    }

    #[test]
    fn hostile_length_is_refused_without_allocating() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let err = decode::<Vec<u8>>(&bytes).expect_err("refused");
        assert_eq!(err.code, crate::Code::InvalidArgument);
    }

    #[test]
    fn trailing_bytes_refused() {
        let mut bytes = encode(&5u8).expect("encode");
        bytes.push(0);
        assert!(decode::<u8>(&bytes).is_err());
    }
}
