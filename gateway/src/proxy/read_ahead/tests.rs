use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::ready;

const CHUNK: usize = 16 * 1024;

/// What the endpoint's side of a test did: bytes produced, and whether its body was dropped.
#[derive(Default)]
struct Seen {
    produced: AtomicU64,
    dropped: AtomicBool,
}

/// An endpoint's body: `chunks` chunks of [`CHUNK`] bytes, chunk `i` filled with `i % 251`,
/// then `end`, as fast as it is polled.
struct Source {
    next: usize,
    chunks: usize,
    end: Option<Result<HeaderMap, BoxError>>,
    seen: Arc<Seen>,
}

impl Source {
    fn new(chunks: usize, end: Result<HeaderMap, BoxError>) -> (Self, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let source = Self {
            next: 0,
            chunks,
            end: Some(end),
            seen: seen.clone(),
        };
        (source, seen)
    }
}

impl http_body::Body for Source {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.next < self.chunks {
            let byte = (self.next % 251) as u8;
            self.next += 1;
            self.seen.produced.fetch_add(CHUNK as u64, Ordering::SeqCst);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![byte; CHUNK])))));
        }
        Poll::Ready(match self.end.take() {
            Some(Ok(trailers)) if trailers.is_empty() => None,
            Some(Ok(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Some(Err(error)) => Some(Err(error)),
            None => None,
        })
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.seen.dropped.store(true, Ordering::SeqCst);
    }
}

fn buffers(memory: usize, disk: u64) -> Buffers {
    Buffers {
        response_memory_bytes: memory,
        response_disk_bytes: disk,
        ..Buffers::default()
    }
}

/// Reads the whole body and checks every chunk's bytes are in order; returns the data length
/// and the last non-data frame, or the error.
async fn read_all(mut body: Body) -> (u64, Result<Option<HeaderMap>, BoxError>) {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return (total, Err(error)),
        };
        match frame.into_data() {
            Ok(data) => {
                for (i, byte) in data.iter().enumerate() {
                    let chunk = (total + i as u64) / CHUNK as u64;
                    assert_eq!(*byte, (chunk % 251) as u8, "byte {} out of order", total);
                }
                total += data.len() as u64;
            }
            Err(frame) => return (total, Ok(frame.into_trailers().ok())),
        }
    }
    (total, Ok(None))
}

async fn until(what: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_keeps_up_gets_it_all_in_order_and_nothing_spills() {
    let metrics = Arc::new(Metrics::new());
    let (source, seen) = Source::new(64, Ok(HeaderMap::new()));
    let body = spawn(source, &buffers(64 * 1024, 1 << 30), &metrics);
    let (total, end) = read_all(body).await;
    assert_eq!(total, 64 * CHUNK as u64);
    assert!(matches!(end, Ok(None)));
    assert_eq!(metrics.response_spills.get(), 0);
    until(|| seen.dropped.load(Ordering::SeqCst)).await;
    assert_eq!(metrics.response_buffer_memory.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_leaves_the_endpoint_free() {
    let metrics = Arc::new(Metrics::new());
    let (source, seen) = Source::new(64, Ok(HeaderMap::new()));
    let body = spawn(source, &buffers(64 * 1024, 1 << 30), &metrics);
    // The whole megabyte is read from the endpoint (and the endpoint's body dropped, which
    // releases its lease and connection) while the client reads nothing.
    until(|| seen.dropped.load(Ordering::SeqCst)).await;
    assert_eq!(seen.produced.load(Ordering::SeqCst), 64 * CHUNK as u64);
    assert_eq!(metrics.response_spills.get(), 1);
    assert!(metrics.response_buffer_memory.get() <= 64 * 1024);
    assert!(metrics.response_buffer_disk.get() >= (64 * CHUNK - 64 * 1024) as i64);
    let (total, end) = read_all(body).await;
    assert_eq!(total, 64 * CHUNK as u64);
    assert!(matches!(end, Ok(None)));
    assert_eq!(metrics.response_buffer_memory.get(), 0);
    assert_eq!(metrics.response_buffer_disk.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_a_file_the_endpoint_waits_for_the_client() {
    let metrics = Arc::new(Metrics::new());
    let (source, seen) = Source::new(64, Ok(HeaderMap::new()));
    let body = spawn(source, &buffers(64 * 1024, 0), &metrics);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The memory's worth, and the chunk that did not fit.
    assert_eq!(
        seen.produced.load(Ordering::SeqCst),
        64 * 1024 + CHUNK as u64
    );
    assert!(!seen.dropped.load(Ordering::SeqCst));
    let (total, _) = read_all(body).await;
    assert_eq!(total, 64 * CHUNK as u64);
    assert_eq!(metrics.response_spills.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_come_after_everything_spilled() {
    let metrics = Arc::new(Metrics::new());
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let (source, seen) = Source::new(16, Ok(trailers));
    let body = spawn(source, &buffers(CHUNK, 1 << 30), &metrics);
    until(|| seen.dropped.load(Ordering::SeqCst)).await;
    let (total, end) = read_all(body).await;
    assert_eq!(total, 16 * CHUNK as u64);
    let trailers = end.expect("no error").expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failure_reaches_the_client_after_the_data() {
    let metrics = Arc::new(Metrics::new());
    let (source, _) = Source::new(4, Err("reset".into()));
    let body = spawn(source, &buffers(1 << 20, 0), &metrics);
    let (total, end) = read_all(body).await;
    assert_eq!(total, 4 * CHUNK as u64);
    assert_eq!(end.expect_err("the failure").to_string(), "reset");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_stops_the_read() {
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let dropped = Arc::new(AtomicBool::new(false));
    let source = Pending {
        rx,
        dropped: dropped.clone(),
    };
    let body = spawn(source, &buffers(1 << 20, 0), &metrics);
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(body);
    // The endpoint sends nothing more; the read stops anyway.
    until(|| dropped.load(Ordering::SeqCst)).await;
    assert_eq!(metrics.response_buffer_memory.get(), 0);
}

/// An endpoint's body fed by a channel, that never ends on its own.
struct Pending {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicBool>,
}

impl http_body::Body for Pending {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let data = ready!(self.rx.poll_recv(cx));
        Poll::Ready(data.map(|d| Ok(Frame::data(d))))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}
