//! A response's spill file: unnamed (removed as it is made, so nothing is left behind by a
//! crash), written at its end and read from its start, both on the blocking pool, in batches of
//! [`BATCH`] (a trip to the blocking pool per upstream read would cost more than the write).
//! What is not written yet is read from memory. Emptied, the file is reused from the start.

use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// What gathers before a write to the file.
const BATCH: usize = 64 * 1024;

pub(super) struct Spill {
    file: Arc<File>,
    /// Where the next write goes, and where the next read starts.
    written: u64,
    read: u64,
    /// Spilled bytes after the file's, not written yet.
    pending: BytesMut,
}

// === impl Spill ===

impl Spill {
    /// Makes a spill file in `dir` (the system's temporary directory if `None`).
    pub(super) async fn create(dir: Option<PathBuf>) -> io::Result<Self> {
        let file = blocking(move || match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        })
        .await?;
        Ok(Self {
            file: Arc::new(file),
            written: 0,
            read: 0,
            pending: BytesMut::new(),
        })
    }

    /// How much more the file may take under `limit` bytes.
    pub(super) fn room(&self, limit: u64) -> u64 {
        limit.saturating_sub(self.written + self.pending.len() as u64)
    }

    /// Appends `data`, written out once a batch has gathered.
    pub(super) async fn append(&mut self, data: &Bytes) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() < BATCH {
            return Ok(());
        }
        let batch = self.pending.split().freeze();
        let file = self.file.clone();
        let at = self.written;
        let len = batch.len() as u64;
        blocking(move || file.write_all_at(&batch, at)).await?;
        self.written += len;
        Ok(())
    }

    /// Takes up to `want` bytes from where the last take ended: from the file, then from what
    /// is not written yet.
    pub(super) async fn take(&mut self, want: usize) -> io::Result<Bytes> {
        if self.read == self.written {
            let len = want.min(self.pending.len());
            return Ok(self.pending.split_to(len).freeze());
        }
        let left = self.written - self.read;
        let len = want.min(usize::try_from(left).unwrap_or(usize::MAX));
        let file = self.file.clone();
        let at = self.read;
        let data = blocking(move || {
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, at).map(|()| buf)
        })
        .await?;
        self.read += len as u64;
        if self.read == self.written {
            self.read = 0;
            self.written = 0;
        }
        Ok(Bytes::from(data))
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)))
}
