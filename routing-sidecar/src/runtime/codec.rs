//! The session's framing: every frame is a 4-byte big-endian length and
//! the frame's bytes, at most `limits.maxMessageBytes` long, both ways.
//!
//! Routing messages, which make up a table transfer, are encoded straight
//! into the connection's write buffer behind their length prefix; every
//! other frame arrives here already encoded. A table of 100k routes so
//! costs no allocation per message on the sending side.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use fabric_core::message::Message;
use fabric_core::wire::DecodeLimits;
use fabric_core::wire_routing;

/// Length of the prefix in front of every frame.
const PREFIX: usize = 4;

/// A frame to write.
#[derive(Debug)]
pub(super) enum OutFrame {
    /// Encoded by the caller (hello, keepalive, close, link-state).
    Encoded(Bytes),
    /// An announcement, withdrawal or end-of-table, encoded by the codec.
    Routing(Arc<Message>),
}

pub(super) struct SessionCodec {
    frames: LengthDelimitedCodec,
}

impl SessionCodec {
    pub(super) fn new(limits: &DecodeLimits) -> Self {
        let frames = LengthDelimitedCodec::builder()
            .length_field_length(PREFIX)
            .max_frame_length(limits.max_message_bytes)
            .new_codec();
        Self { frames }
    }
}

impl Decoder for SessionCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        self.frames.decode(src)
    }
}

impl Encoder<OutFrame> for SessionCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: OutFrame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match frame {
            OutFrame::Encoded(bytes) => self.frames.encode(bytes, dst),
            OutFrame::Routing(message) => {
                let (length, limit) = (wire_routing::routing_frame_len(&message), self.frames.max_frame_length());
                // As the length-delimited codec refuses an encoded frame
                // above the limit: the peer would refuse to read it.
                if length > limit {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("frame of {length} bytes above limits.maxMessageBytes ({limit})"),
                    ));
                }
                dst.reserve(PREFIX + length);
                dst.put_u32(length as u32);
                wire_routing::encode_routing_frame(&message, dst);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::wire::{self, Frame};

    fn routing(destination: &str) -> Arc<Message> {
        Arc::new(Message::Withdrawal(fabric_core::message::RouteWithdrawal {
            destination: destination.into(),
            path: vec!["a".into()],
            advertiser: "a".into(),
            epoch: 7,
            issued_at_ms: None,
            signature: None,
        }))
    }

    #[test]
    fn routing_frames_are_written_as_the_encoded_ones_and_read_back() {
        let limits = DecodeLimits::default();
        let mut codec = SessionCodec::new(&limits);
        let message = routing("payments");
        let mut direct = BytesMut::new();
        codec.encode(OutFrame::Routing(message.clone()), &mut direct).unwrap();
        let mut body = Vec::new();
        wire::encode_frame(&Frame::Routing((*message).clone()), &mut body);
        let mut encoded = BytesMut::new();
        codec.encode(OutFrame::Encoded(body.clone().into()), &mut encoded).unwrap();
        assert_eq!(direct, encoded);
        assert_eq!(codec.decode(&mut direct).unwrap().as_deref(), Some(&body[..]));
        assert!(direct.is_empty());
    }

    #[test]
    fn a_routing_frame_above_the_limit_is_refused_and_nothing_is_written() {
        let limits = DecodeLimits { max_message_bytes: 16, ..DecodeLimits::default() };
        let mut codec = SessionCodec::new(&limits);
        let mut out = BytesMut::new();
        let error = codec.encode(OutFrame::Routing(routing("a-destination-name-too-long")), &mut out).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }
}
