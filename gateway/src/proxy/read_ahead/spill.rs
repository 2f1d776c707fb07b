//! A response's spill file: unnamed (removed as it is made, so nothing is left behind by a
//! crash), written at its end and read from its start, both on the blocking pool. Emptied, it is
//! reused from the start.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct Spill {
    file: Arc<File>,
    /// Where the next write goes, and where the next read starts.
    written: u64,
    read: u64,
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
        })
    }

    /// How much more the file may take under `limit` bytes.
    pub(super) fn room(&self, limit: u64) -> u64 {
        limit.saturating_sub(self.written)
    }

    /// Appends `data`.
    pub(super) async fn append(&mut self, data: Bytes) -> io::Result<()> {
        let file = self.file.clone();
        let at = self.written;
        let len = data.len() as u64;
        blocking(move || file.write_all_at(&data, at)).await?;
        self.written += len;
        Ok(())
    }

    /// Reads up to `want` bytes from where the last read ended.
    pub(super) async fn take(&mut self, want: usize) -> io::Result<Bytes> {
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
