//! Docker's multiplexed stream framing: an 8-byte header `[stream, 0, 0, 0, len_be32]`
//! followed by `len` bytes of payload. Used when a container has no TTY.

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// An error from the engine, not the container.
    System = 3,
}

impl StreamKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Stdin),
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            3 => Some(Self::System),
            _ => None,
        }
    }

    /// The name Docker's json-file log uses.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::Stdin => "stdin",
            Self::Stdout => "stdout",
            Self::Stderr | Self::System => "stderr",
        }
    }
}

pub const HEADER_LEN: usize = 8;

/// The frame header for `len` bytes on `kind`.
pub fn header(kind: StreamKind, len: usize) -> [u8; HEADER_LEN] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [kind as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Appends one frame to `out`.
pub fn encode_into(out: &mut Vec<u8>, kind: StreamKind, payload: &[u8]) {
    out.extend_from_slice(&header(kind, payload.len()));
    out.extend_from_slice(payload);
}

/// Parses a frame header: the stream and the payload length.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Option<(StreamKind, usize)> {
    let kind = StreamKind::from_byte(h[0])?;
    Some((kind, u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize))
}

/// Splits a stdcopy stream into frames as bytes arrive in arbitrary chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds `data`; returns the frames now complete. A header with an unknown stream number
    /// ends decoding: the rest is returned as one `Stdout` frame, as it cannot be framed.
    pub fn push(&mut self, data: &[u8]) -> Vec<(StreamKind, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= HEADER_LEN {
            let header: &[u8; HEADER_LEN] = self.buf[at..at + HEADER_LEN]
                .try_into()
                .expect("HEADER_LEN bytes");
            let Some((kind, len)) = parse_header(header) else {
                frames.push((StreamKind::Stdout, self.buf[at..].to_vec()));
                at = self.buf.len();
                break;
            };
            if self.buf.len() - at - HEADER_LEN < len {
                break;
            }
            let start = at + HEADER_LEN;
            frames.push((kind, self.buf[start..start + len].to_vec()));
            at = start + len;
        }
        self.buf.drain(..at);
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_splits_frames_across_chunks() {
        let mut d = Decoder::default();
        let mut data = Vec::new();
        encode_into(&mut data, StreamKind::Stdout, b"out");
        encode_into(&mut data, StreamKind::Stderr, b"err!");
        let (a, b) = data.split_at(13);
        assert_eq!(d.push(a), vec![(StreamKind::Stdout, b"out".to_vec())]);
        assert_eq!(d.push(b), vec![(StreamKind::Stderr, b"err!".to_vec())]);
        assert!(d.push(&[]).is_empty());
    }

    #[test]
    fn frames_round_trip() {
        let mut v = Vec::new();
        encode_into(&mut v, StreamKind::Stderr, b"oops\n");
        let h: [u8; 8] = v[..8].try_into().expect("8 bytes");
        assert_eq!(parse_header(&h), Some((StreamKind::Stderr, 5)));
        assert_eq!(&v[8..], b"oops\n");
    }

    #[test]
    fn unknown_stream_byte_is_rejected() {
        assert_eq!(parse_header(&[9, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
