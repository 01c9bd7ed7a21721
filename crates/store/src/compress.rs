//! Stream plumbing shared by blobs, layers and archives: compression detection by magic bytes,
//! transparent decompression, and a reader that hashes (and caps) what flows through it.

use std::io::{self, Read};

use arca_model::Digest;
use sha2::{Digest as _, Sha256};

/// How a stream is compressed, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    /// Recognised but not supported (xz, bzip2).
    Unsupported(&'static str),
}

impl Compression {
    /// Detects the compression from a stream's first (up to 6) bytes.
    pub(crate) fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::Unsupported("xz")
        } else if head.starts_with(b"BZh") {
            Self::Unsupported("bzip2")
        } else {
            Self::None
        }
    }

    /// The OCI media type of a layer blob compressed this way.
    pub(crate) fn layer_media_type(self) -> &'static str {
        match self {
            Self::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Self::None | Self::Unsupported(_) => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// Reads the first bytes of `input` to detect its compression, and returns them re-joined with
/// the rest of the stream.
pub(crate) fn sniff<R: Read>(mut input: R) -> io::Result<(Compression, impl Read)> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = Compression::detect(&head[..n]);
    Ok((kind, io::Cursor::new(head[..n].to_vec()).chain(input)))
}

/// Wraps `input` in the decompressor its magic bytes ask for.
pub(crate) fn decompress<'a, R: Read + 'a>(input: R) -> io::Result<Box<dyn Read + 'a>> {
    let (kind, input) = sniff(input)?;
    Ok(match kind {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        Compression::Unsupported(name) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} compression is not supported"),
            ));
        }
    })
}

/// The error a [`HashReader`] returns once more than its limit has been read.
#[derive(Debug, thiserror::Error)]
#[error("stream exceeds {0} bytes")]
pub(crate) struct LimitExceeded(pub u64);

/// Hashes and counts everything read through it; fails once `limit` bytes are exceeded.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
            exceeded: false,
        }
    }

    /// Whether a read failed because the limit was exceeded.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Reads the rest of the stream (hashing it) and returns the digest and byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            Digest::from_sha256(self.hasher.finalize().into()),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded = true;
            return Err(io::Error::other(LimitExceeded(self.limit)));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn detect_recognises_gzip_zstd_and_plain() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zs = zstd::encode_all(&b"hello"[..], 1).expect("zstd");
        assert_eq!(Compression::detect(&gz), Compression::Gzip);
        assert_eq!(Compression::detect(&zs), Compression::Zstd);
        assert_eq!(Compression::detect(b"hello"), Compression::None);
        for data in [gz, zs, b"hello".to_vec()] {
            let mut out = String::new();
            decompress(&data[..])
                .expect("decompress")
                .read_to_string(&mut out)
                .expect("read");
            assert_eq!(out, "hello");
        }
    }

    #[test]
    fn sniff_keeps_short_streams_intact() {
        let (kind, mut r) = sniff(&b"ab"[..]).expect("sniff");
        assert_eq!(kind, Compression::None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"ab");
    }

    #[test]
    fn hash_reader_hashes_and_enforces_limit() {
        let (d, n) = HashReader::new(&b"x"[..], 10).finish().expect("finish");
        assert_eq!((d, n), (Digest::of(b"x"), 1));
        let mut r = HashReader::new(&[0u8; 100][..], 10);
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        assert!(r.exceeded());
    }
}
