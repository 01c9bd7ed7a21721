//! The content store: blobs addressed by their SHA-256 digest under `content/blobs/sha256/`.
//!
//! A blob is streamed into `content/tmp/`, hashed on the way, fsynced, and renamed into place
//! only once its digest is known (and matches the expected one, if given). Readers therefore
//! never see a partial or unverified blob. Writing a blob that already exists is harmless.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use arca_model::{Digest, random_hex};

use crate::compress::{Compression, HashReader};
use crate::layout::sync_dir;
use crate::{Store, StoreError};

impl Store {
    /// Streams `input` into the content store and returns its digest and size. With
    /// `expected`, a different digest is an error and nothing becomes visible. A blob no
    /// image references yet is protected from garbage collection only while the caller
    /// holds a [`crate::Lease`].
    pub fn write_blob(
        &self,
        input: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        // The temporary file must not be swept as a leftover while it is being written.
        let _lease = self.lease();
        let tmp = self.layout.content_tmp().join(random_hex(16));
        let result = self.write_blob_via(&tmp, input, expected);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_blob_via(
        &self,
        tmp: &Path,
        input: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(StoreError::io("create", tmp))?;
        let mut reader = HashReader::new(input, u64::MAX);
        copy(&mut reader, &mut file, tmp)?;
        let (digest, size) = reader.finish().map_err(StoreError::Input)?;
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        file.sync_all().map_err(StoreError::io("sync", tmp))?;
        drop(file);
        self.publish_blob(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Moves a verified, fsynced file into place as blob `digest`.
    pub(crate) fn publish_blob(&self, file: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.layout.blob(digest);
        if dest.exists() {
            let _ = fs::remove_file(file);
            return Ok(());
        }
        fs::rename(file, &dest).map_err(StoreError::io("rename", &dest))?;
        sync_dir(&self.layout.blobs())
    }

    /// Whether blob `digest` is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.layout.blob(digest).is_file()
    }

    /// Opens blob `digest` for reading.
    pub(crate) fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.layout.blob(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::io("open", &path)(e),
        })
    }

    /// Reads a small blob (a config or manifest) fully.
    pub(crate) fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut v = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut v)
            .map_err(StoreError::io("read", self.layout.blob(digest)))?;
        Ok(v)
    }

    /// The compression of blob `digest`, from its magic bytes.
    pub(crate) fn blob_compression(&self, digest: &Digest) -> Result<Compression, StoreError> {
        let mut head = Vec::with_capacity(6);
        self.open_blob(digest)?
            .take(6)
            .read_to_end(&mut head)
            .map_err(StoreError::io("read", self.layout.blob(digest)))?;
        Ok(Compression::detect(&head))
    }
}

/// Copies `from` into `to`, telling read failures (the client's stream) from write failures.
pub(crate) fn copy(
    from: &mut impl Read,
    to: &mut impl Write,
    dest: &Path,
) -> Result<u64, StoreError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Input(e)),
        };
        to.write_all(&buf[..n])
            .map_err(StoreError::io("write", dest))?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::empty_store;

    use super::*;

    #[test]
    fn write_blob_verifies_digest_before_publishing() {
        let (_tmp, store) = empty_store();
        let wrong = Digest::of(b"other");
        let err = store
            .write_blob(&b"data"[..], Some(&wrong))
            .expect_err("mismatch");
        assert!(matches!(err, StoreError::DigestMismatch { .. }));
        assert!(!store.has_blob(&Digest::of(b"data")));
        assert_eq!(
            fs::read_dir(store.layout.content_tmp())
                .expect("ls")
                .count(),
            0
        );
        let (d, n) = store.write_blob(&b"data"[..], None).expect("write");
        assert_eq!((d.clone(), n), (Digest::of(b"data"), 4));
        assert_eq!(store.read_blob(&d).expect("read"), b"data");
        store
            .write_blob(&b"data"[..], Some(&d))
            .expect("rewrite is harmless");
    }
}
