//! The session's framing: every frame is a 4-byte big-endian length and
//! the frame's bytes, at most `limits.maxMessageBytes` long, both ways.
//!
//! Routing messages, which make up a table transfer, are framed by the
//! node actor (`encode_routing`), straight into its send queue's run of
//! frames for the session, and reach the connection as runs of whole
//! frames that it writes as they are; every other frame arrives here
//! encoded and gets its prefix here. A table of 100k routes so costs no
//! allocation, and no work at all on the connection's thread, per
//! message on the sending side.
//!
//! Reading, the codec hands out one frame at a time until the session is
//! established (the hello), then runs of whole frames as they lie in the
//! read buffer (`read_runs`, `frames_of`): one split of the buffer and one
//! poll of the stream per run of up to `MAX_FRAMES_PER_RUN` frames instead
//! of per frame, which was a sixth of the reading thread's time in a
//! table transfer.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use fabric_core::message::Message;
use fabric_core::wire::DecodeLimits;
use fabric_core::wire_routing;

/// Length of the prefix in front of every frame.
const PREFIX: usize = 4;

/// Frames a run holds at most: what a connection decodes beyond its batch
/// bound (`inbound::MAX_BATCH`) stays below this.
pub(super) const MAX_FRAMES_PER_RUN: usize = 256;

/// What to write.
#[derive(Debug)]
pub(super) enum OutFrame {
    /// One frame, encoded by the caller (hello, keepalive, close,
    /// link-state): the codec puts its length prefix in front.
    Encoded(Bytes),
    /// Whole frames, each behind its prefix already (`encode_routing`).
    Framed(Bytes),
}

/// Appends the frame of routing message `message` to `out`, behind its
/// length prefix; refused, with nothing written, when the frame is longer
/// than `max_frame` (`limits.maxMessageBytes`), which the peer would
/// refuse to read.
pub(super) fn encode_routing(message: &Message, max_frame: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let (length, write) = wire_routing::routing_frame(message);
    if length > max_frame {
        return Err(format!("frame of {length} bytes above limits.maxMessageBytes ({max_frame})"));
    }
    out.reserve(PREFIX + length);
    out.put_u32(length as u32);
    write(out);
    Ok(())
}

pub(super) struct SessionCodec {
    frames: LengthDelimitedCodec,
    /// Decoding runs of frames (after the hello) rather than single ones.
    runs: bool,
}

impl SessionCodec {
    pub(super) fn new(limits: &DecodeLimits) -> Self {
        let frames = LengthDelimitedCodec::builder()
            .length_field_length(PREFIX)
            .max_frame_length(limits.max_message_bytes)
            .new_codec();
        Self { frames, runs: false }
    }

    /// From now on `decode` returns runs of whole frames, each still behind
    /// its length prefix: read them with `frames_of`.
    pub(super) fn read_runs(&mut self) {
        self.runs = true;
    }

    /// The whole frames at the start of `src`, at most `MAX_FRAMES_PER_RUN`,
    /// split off together; `None` until the first is complete.
    fn decode_run(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        let limit = self.frames.max_frame_length();
        let (mut end, mut count) = (0, 0);
        while count < MAX_FRAMES_PER_RUN {
            let Some(&head) = src.get(end..).and_then(|rest| rest.first_chunk::<PREFIX>()) else { break };
            let length = u32::from_be_bytes(head) as usize;
            if length > limit {
                if end == 0 {
                    // The same error as when frames were read one by one.
                    return self.frames.decode(src);
                }
                break;
            }
            if src.len() - end - PREFIX < length {
                if end == 0 {
                    // Room for the whole frame in the next read.
                    src.reserve(PREFIX + length - src.len());
                }
                break;
            }
            end += PREFIX + length;
            count += 1;
        }
        Ok((end > 0).then(|| src.split_to(end)))
    }
}

/// The frames of a run from `SessionCodec::decode` (after `read_runs`),
/// without their prefixes.
pub(super) fn frames_of(run: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = run;
    std::iter::from_fn(move || {
        let (head, tail) = rest.split_first_chunk::<PREFIX>()?;
        // Whole frames only: `decode_run` checked every length.
        let (frame, tail) = tail.split_at(u32::from_be_bytes(*head) as usize);
        rest = tail;
        Some(frame)
    })
}

impl Decoder for SessionCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        if self.runs { self.decode_run(src) } else { self.frames.decode(src) }
    }
}

impl Encoder<OutFrame> for SessionCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: OutFrame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match frame {
            OutFrame::Encoded(bytes) => self.frames.encode(bytes, dst),
            OutFrame::Framed(frames) => {
                dst.extend_from_slice(&frames);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::wire::{self, Frame};

    fn routing(destination: &str) -> Message {
        Message::Withdrawal(fabric_core::message::RouteWithdrawal {
            destination: destination.into(),
            path: vec!["a".into()],
            advertiser: "a".into(),
            epoch: 7,
            issued_at_ms: None,
            signature: None,
        })
    }

    #[test]
    fn routing_frames_are_written_as_the_encoded_ones_and_read_back() {
        let limits = DecodeLimits::default();
        let mut codec = SessionCodec::new(&limits);
        let message = routing("payments");
        let mut framed = Vec::new();
        encode_routing(&message, limits.max_message_bytes, &mut framed).unwrap();
        encode_routing(&message, limits.max_message_bytes, &mut framed).unwrap();
        let mut direct = BytesMut::new();
        codec.encode(OutFrame::Framed(framed.into()), &mut direct).unwrap();
        let mut body = Vec::new();
        wire::encode_frame(&Frame::Routing(message), &mut body);
        let mut encoded = BytesMut::new();
        codec.encode(OutFrame::Encoded(body.clone().into()), &mut encoded).unwrap();
        codec.encode(OutFrame::Encoded(body.clone().into()), &mut encoded).unwrap();
        assert_eq!(direct, encoded, "two frames, as the codec frames them");
        assert_eq!(codec.decode(&mut direct).unwrap().as_deref(), Some(&body[..]));
        assert_eq!(codec.decode(&mut direct).unwrap().as_deref(), Some(&body[..]));
        assert!(direct.is_empty());
    }

    /// `frames` written as the codec writes them, then `extra` bytes.
    fn written(frames: &[&[u8]], extra: &[u8]) -> BytesMut {
        let mut codec = SessionCodec::new(&DecodeLimits::default());
        let mut out = BytesMut::new();
        for frame in frames {
            codec.encode(OutFrame::Encoded(Bytes::copy_from_slice(frame)), &mut out).unwrap();
        }
        out.extend_from_slice(extra);
        out
    }

    fn runs_codec(max_message_bytes: usize) -> SessionCodec {
        let mut codec = SessionCodec::new(&DecodeLimits { max_message_bytes, ..DecodeLimits::default() });
        codec.read_runs();
        codec
    }

    #[test]
    fn runs_hold_the_whole_frames_in_order_and_leave_a_partial_one() {
        let frames: [&[u8]; 3] = [b"one", b"", b"three"];
        let mut src = written(&frames, &[0, 0, 0, 9, b'p']);
        let run = runs_codec(64).decode(&mut src).unwrap().expect("a run");
        assert_eq!(frames_of(&run).collect::<Vec<_>>(), frames);
        assert_eq!(&src[..], &[0, 0, 0, 9, b'p'], "the partial frame waits for more bytes");
        assert!(runs_codec(64).decode(&mut src).unwrap().is_none());
        assert!(src.capacity() >= PREFIX + 9, "room reserved for the whole frame");
    }

    #[test]
    fn a_run_holds_at_most_max_frames_per_run() {
        let frames = vec![&b"f"[..]; MAX_FRAMES_PER_RUN + 3];
        let mut src = written(&frames, &[]);
        let mut codec = runs_codec(64);
        let first = codec.decode(&mut src).unwrap().expect("a run");
        let second = codec.decode(&mut src).unwrap().expect("the rest");
        assert_eq!((frames_of(&first).count(), frames_of(&second).count()), (MAX_FRAMES_PER_RUN, 3));
        assert!(src.is_empty());
    }

    #[test]
    fn an_oversized_frame_ends_a_run_and_then_fails_as_read_one_by_one() {
        let mut src = written(&[b"ok"], &[0, 1, 0, 0]);
        let mut codec = runs_codec(64);
        let run = codec.decode(&mut src).unwrap().expect("the frame before it");
        assert_eq!(frames_of(&run).collect::<Vec<_>>(), [&b"ok"[..]]);
        let error = codec.decode(&mut src).unwrap_err();
        let one_by_one = SessionCodec::new(&DecodeLimits { max_message_bytes: 64, ..DecodeLimits::default() })
            .decode(&mut BytesMut::from(&[0u8, 1, 0, 0][..]))
            .unwrap_err();
        assert_eq!((error.kind(), error.to_string()), (one_by_one.kind(), one_by_one.to_string()));
        assert!(error.to_string().contains("frame size too big"), "{error}: the label `frame_too_large` reads this");
    }

    #[test]
    fn a_routing_frame_above_the_limit_is_refused_and_nothing_is_written() {
        let mut out = vec![7];
        let error = encode_routing(&routing("a-destination-name-too-long"), 16, &mut out).unwrap_err();
        assert!(error.contains("above limits.maxMessageBytes (16)"), "{error}");
        assert_eq!(out, [7], "nothing written");
    }
}
