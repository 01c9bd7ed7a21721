//! Read-only access to an image's content for clients that send it elsewhere (a registry
//! push): the exact config bytes and the layer blobs as stored.

use std::fs::File;

use arca_model::Digest;

use crate::image::Image;
use crate::{Store, StoreError};

impl Store {
    /// The image's config exactly as stored (its SHA-256 is the image ID).
    pub fn image_config(&self, image: &Image) -> Result<Vec<u8>, StoreError> {
        self.read_blob(&image.id)
    }

    /// Opens blob `digest` for reading, with its size. A blob is immutable once published,
    /// so the size stays valid while the file is read.
    pub fn open_blob_read(&self, digest: &Digest) -> Result<(File, u64), StoreError> {
        let file = self.open_blob(digest)?;
        let size = file
            .metadata()
            .map_err(StoreError::io("stat", self.layout.blob(digest)))?
            .len();
        Ok((file, size))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::empty_store;

    use super::*;

    #[test]
    fn open_blob_read_reports_size_and_missing_blobs() {
        let (_tmp, store) = empty_store();
        let (d, _) = store.write_blob(&b"layer"[..], None).expect("write");
        let (_, size) = store.open_blob_read(&d).expect("open");
        assert_eq!(size, 5);
        let missing = store.open_blob_read(&Digest::of(b"nope"));
        assert!(matches!(missing, Err(StoreError::MissingBlob(_))));
    }
}
