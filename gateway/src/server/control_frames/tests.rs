use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn settings() -> Vec<u8> {
    frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])
}

fn ping() -> Vec<u8> {
    frame(0x6, 0, 0, &[7; 8])
}

fn headers(stream: u32) -> Vec<u8> {
    frame(0x1, 0x5, stream, &[0x82, 0x86, 0x84])
}

/// Feeds `stream` in pieces of `piece` bytes; what the budget counted, or the first frame over it
/// as an offset into the whole stream.
fn scan(stream: &[u8], piece: usize, max: u32) -> (u32, Option<(usize, Counted)>) {
    let mut scanner = Scanner::new();
    let mut budget = Budget::new(max);
    for (i, bytes) in stream.chunks(piece).enumerate() {
        if let Err(over) = scanner.feed(bytes, &mut budget) {
            return (budget.count, Some((i * piece + over.at, over.kind)));
        }
    }
    (budget.count, None)
}

#[tokio::test(start_paused = true)]
async fn counts_the_same_however_the_bytes_arrive() {
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(frame(0x8, 0, 0, &[0, 1, 0, 0]));
    stream.extend(frame(0x1, 0x4, 1, &[0x82, 0x86]));
    // Payloads that hold PING frames' bytes, one longer than most pieces: skipped, not counted.
    stream.extend(frame(0x0, 0, 1, &ping()));
    stream.extend(frame(0x0, 0, 1, &ping().repeat(20)));
    stream.extend(frame(0x0, 0x1, 1, &[]));
    for _ in 0..5 {
        stream.extend(ping());
    }
    stream.extend(frame(0x2, 0, 3, &[0, 0, 0, 0, 16]));
    stream.extend(frame(0x0, 0, 1, &[]));
    stream.extend(frame(0xfa, 0, 0, b"grease"));
    for piece in [1, 2, 5, 9, 10, 17, stream.len()] {
        // SETTINGS, 5 PINGs, PRIORITY, empty DATA, unknown: 9; HEADERS gave one back.
        assert_eq!(scan(&stream, piece, 100), (8, None), "pieces of {piece}");
    }
}

#[tokio::test(start_paused = true)]
async fn finds_the_frame_over_the_limit() {
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(ping());
    stream.extend(ping());
    let third = stream.len();
    stream.extend(ping());
    stream.extend(ping());
    for piece in [1, 3, 9, 64, stream.len()] {
        let (_, over) = scan(&stream, piece, 3);
        let (at, kind) = over.expect("over the limit");
        assert_eq!(kind, Counted::Ping);
        // Where its header starts, or where the piece that completed it starts.
        assert!(
            at == third || (at > third && at - third < HEADER_LEN),
            "{piece}: {at}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn requests_and_stream_ends_are_not_counted() {
    let mut stream = PREFACE.to_vec();
    for i in 0..50 {
        stream.extend(headers(2 * i + 1));
        stream.extend(frame(0x2, 0, 2 * i + 1, &[0, 0, 0, 0, 16]));
        stream.extend(frame(0x0, 0x1, 2 * i + 1, &[]));
        stream.extend(frame(0x0, 0, 2 * i + 1, b"body"));
        stream.extend(frame(0x3, 0, 2 * i + 1, &[0, 0, 0, 8]));
        stream.extend(frame(0x8, 0, 0, &[0, 0, 0, 4]));
    }
    // A PRIORITY frame with each request: the HEADERS give it back.
    assert_eq!(scan(&stream, 7, 2), (1, None));
}

#[tokio::test(start_paused = true)]
async fn the_window_restarts_once_it_has_passed() {
    let mut scanner = Scanner::new();
    let mut budget = Budget::new(2);
    scanner.feed(PREFACE, &mut budget).unwrap();
    scanner
        .feed(&[ping(), ping()].concat(), &mut budget)
        .unwrap();
    tokio::time::advance(WINDOW).await;
    scanner
        .feed(&[ping(), ping()].concat(), &mut budget)
        .unwrap();
    tokio::time::advance(WINDOW / 2).await;
    let over = scanner.feed(&ping(), &mut budget).unwrap_err();
    assert_eq!(
        over,
        Over {
            at: 0,
            kind: Counted::Ping
        }
    );
}

#[test]
fn labels_are_the_catalogue_values() {
    let all = [
        Counted::Settings,
        Counted::Ping,
        Counted::Priority,
        Counted::EmptyData,
        Counted::Unknown,
    ];
    let labels: Vec<_> = all.iter().map(|c| c.label()).collect();
    assert_eq!(labels, FLOOD_FRAMES);
}

/// Through the transport: hyper reads everything before the frame over the limit, then nothing
/// (not an end of stream), and the mark says which kind went over.
#[tokio::test(start_paused = true)]
async fn the_transport_stops_at_the_frame_over_the_limit() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let flood = Arc::new(Flood::default());
    let mut transport = ControlFrames::new(server, 3, flood.clone());
    let mut sent = PREFACE.to_vec();
    sent.extend(settings());
    sent.extend(headers(1));
    sent.extend(ping());
    sent.extend(ping());
    sent.extend(ping());
    let allowed = sent.len();
    sent.extend(frame(0x4, 0, 0, &[]));
    sent.extend(ping());
    client.write_all(&sent).await.unwrap();
    let mut read = vec![0; 64 * 1024];
    let n = transport.read(&mut read).await.unwrap();
    assert_eq!(&read[..n], &sent[..allowed]);
    assert_eq!(flood.kind(), Some(Counted::Settings));
    client.write_all(&ping()).await.unwrap();
    let more = tokio::time::timeout(Duration::from_secs(5), transport.read(&mut read)).await;
    assert!(more.is_err(), "read {more:?} after the limit");
}
