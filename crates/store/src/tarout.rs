//! Pieces shared by the tar writers that read live directories (`commit`, `export`).

use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Reads exactly `len` bytes: the file's rest if it grew, zeros if it shrank. A file that
/// changes size while it is read (a running container) must not corrupt the stream, whose
/// header already announced the length.
pub(crate) struct FixedLen<R> {
    inner: R,
    left: u64,
    eof: bool,
}

impl<R: Read> FixedLen<R> {
    pub(crate) fn new(inner: R, len: u64) -> Self {
        Self {
            inner,
            left: len,
            eof: false,
        }
    }
}

impl<R: Read> Read for FixedLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.eof {
            buf[..want].fill(0);
            want
        } else {
            match self.inner.read(&mut buf[..want])? {
                0 => {
                    self.eof = true;
                    buf[..want].fill(0);
                    want
                }
                n => n,
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Puts a character or block device's numbers in its header (`set_metadata` leaves them
/// 0,0, which would turn `/dev/null` into a whiteout-looking node).
pub(crate) fn set_device(h: &mut tar::Header, meta: &Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        let dev = meta.rdev();
        let major = u32::try_from(nix::sys::stat::major(dev)).unwrap_or(u32::MAX);
        let minor = u32::try_from(nix::sys::stat::minor(dev)).unwrap_or(u32::MAX);
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_change_size_keep_the_announced_length() {
        let mut short = Vec::new();
        FixedLen::new(&b"abc"[..], 5)
            .read_to_end(&mut short)
            .expect("read");
        assert_eq!(short, b"abc\0\0");
        let mut long = Vec::new();
        FixedLen::new(&b"abcdef"[..], 2)
            .read_to_end(&mut long)
            .expect("read");
        assert_eq!(long, b"ab");
    }

    #[test]
    fn device_numbers_reach_the_header() {
        let meta = std::fs::metadata("/dev/null").expect("/dev/null");
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        set_device(&mut h, &meta).expect("set");
        assert_eq!(h.device_major().expect("major"), Some(1));
        assert_eq!(h.device_minor().expect("minor"), Some(3));
    }
}
