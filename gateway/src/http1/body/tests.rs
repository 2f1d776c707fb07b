use super::*;
use crate::body;
use http::HeaderMap;

/// Records each write; takes at most `limit` bytes per write.
pub(crate) struct Recorder {
    pub(crate) writes: Vec<Vec<u8>>,
    pub(crate) limit: usize,
}

impl Sink for Recorder {
    fn poll_write_vectored(
        &mut self,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut write = Vec::new();
        for buf in bufs {
            let room = self.limit - write.len();
            write.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        let n = write.len();
        self.writes.push(write);
        Poll::Ready(Ok(n))
    }
}

impl Recorder {
    fn written(&self) -> Vec<u8> {
        self.writes.concat()
    }
}

fn write(body: Body, framing: Framing, limit: usize) -> (Recorder, Result<(), WriteError>) {
    let mut sink = Recorder {
        writes: Vec::new(),
        limit,
    };
    let mut writer = BodyWriter::new(b"HEAD\r\n\r\n".to_vec(), body, framing);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(result) = writer.poll_write(&mut cx, &mut sink) {
            return (sink, result);
        }
    }
}

fn frames(frames: Vec<http_body::Frame<Bytes>>) -> Body {
    body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames.into_iter().map(Ok::<_, body::BoxError>),
    )))
}

#[test]
fn writes_chunks_with_trailers_and_checks_declared_lengths() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "5".parse().unwrap());
    trailers.insert("host", "smuggled".parse().unwrap());
    let body = frames(vec![
        http_body::Frame::data(Bytes::from_static(b"abc")),
        http_body::Frame::data(Bytes::new()),
        http_body::Frame::data(Bytes::from_static(b"de")),
        http_body::Frame::trailers(trailers),
    ]);
    for limit in [1, 5, usize::MAX] {
        let body = frames(vec![
            http_body::Frame::data(Bytes::from_static(b"abc")),
            http_body::Frame::data(Bytes::from_static(b"de")),
        ]);
        let (sink, result) = write(body, Framing::Chunked, limit);
        result.expect("written");
        assert_eq!(
            sink.written(),
            b"HEAD\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        );
    }
    let (sink, result) = write(body, Framing::Chunked, usize::MAX);
    result.expect("written");
    assert_eq!(
        sink.written(),
        b"HEAD\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 5\r\n\r\n"
    );

    let (sink, result) = write(body::full("abc"), Framing::Length(3), usize::MAX);
    result.expect("written");
    // A complete body goes out with its head in one write.
    assert_eq!(sink.writes, [b"HEAD\r\n\r\nabc"]);
    let (_, result) = write(body::full("abcd"), Framing::Length(3), usize::MAX);
    assert!(matches!(result, Err(WriteError::TooLong)));
    let (_, result) = write(body::full("ab"), Framing::Length(3), usize::MAX);
    assert!(matches!(result, Err(WriteError::TooShort)));
    let (_, result) = write(body::empty(), Framing::Length(3), usize::MAX);
    assert!(matches!(result, Err(WriteError::TooShort)));
    // No body at all: the head alone, the body never polled.
    let (sink, result) = write(body::full("ignored"), Framing::None, usize::MAX);
    result.expect("written");
    assert_eq!(sink.written(), b"HEAD\r\n\r\n");
}

#[test]
fn an_unpolled_body_can_be_taken_back() {
    let mut writer = BodyWriter::new(Vec::new(), body::full("x"), Framing::Length(1));
    assert!(!writer.wrote());
    assert!(writer.take_unpolled_body().is_some());
}

#[test]
fn reads_lengths_chunks_and_bodies_that_end_with_the_connection() {
    let mut reader = BodyReader::new(Framing::Length(4));
    let mut buf = BytesMut::from(&b"abcdeGET"[..]);
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::Data(d)) if d == "abcd"));
    assert!(reader.ended());
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::End)));
    assert_eq!(&buf[..], b"eGET");

    let mut reader = BodyReader::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"2\r\nab\r\n0\r\n\r\nnext"[..]);
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::Data(d)) if d == "ab"));
    assert!(!reader.ended());
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::End)));
    assert!(reader.ended());
    assert_eq!(&buf[..], b"next");

    let mut reader = BodyReader::new(Framing::UntilClose);
    let mut buf = BytesMut::from(&b"all of it"[..]);
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::Data(d)) if d == "all of it"));
    assert!(matches!(reader.decode(&mut buf), Ok(Decoded::NeedMore)));
    reader.at_close().expect("the close ends it");
    assert!(reader.ended());
    assert!(BodyReader::new(Framing::Length(3)).at_close().is_err());
    assert_eq!(
        BodyReader::new(Framing::Length(3)).size_hint().exact(),
        Some(3)
    );
    assert!(BodyReader::new(Framing::None).ended());
}
