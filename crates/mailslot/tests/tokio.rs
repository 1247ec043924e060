//! The async reader and writer on tokio's current-thread runtime.
#![cfg(feature = "tokio")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use mailslot::{AsyncReader, AsyncWriter, ReaderOptions, Writer};

mod common;

use common::{LONG, name, ns};

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::test(flavor = "current_thread")]
async fn stream_end_to_end_on_the_current_thread_runtime() {
    let (_tmp, ns) = ns();
    let n = name("stream");
    let mut reader = AsyncReader::create_in(&ns, &n, &ReaderOptions::default()).unwrap();
    let writer = AsyncWriter::open_in(&ns, &n).unwrap();
    // A writer task and the reading stream share the one runtime thread:
    // 5 000 messages of 1 KiB overflow the socket buffers, so both must
    // wait for readiness without blocking the thread.
    let total = 5000u32;
    let producer = tokio::spawn(async move {
        for i in 0..total {
            let mut m = vec![(i % 251) as u8; 1024];
            m[..4].copy_from_slice(&i.to_le_bytes());
            writer.write(&m).await.unwrap();
        }
        writer.write(b"").await.unwrap();
    });
    for i in 0..total {
        let m = tokio::time::timeout(LONG, next(&mut reader))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.data[..4], i.to_le_bytes());
        assert!(m.data[4..].iter().all(|&b| b == (i % 251) as u8));
        assert_eq!(m.sender.pid, std::process::id());
    }
    let last = reader.read_message().await.unwrap();
    assert!(last.data.is_empty());
    producer.await.unwrap();
    let info = reader.info().await.unwrap();
    assert_eq!((info.count, info.next_size), (0, None));
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_pending_read_loses_no_message() {
    let (_tmp, ns) = ns();
    let n = name("cancel");
    let mut reader = AsyncReader::create_in(&ns, &n, &ReaderOptions::default()).unwrap();
    let w = Writer::open_in(&ns, &n).unwrap();

    // A read that is pending (nothing to read) and then dropped...
    tokio::select! {
        biased;
        m = reader.read_message() => panic!("nothing was written, got {m:?}"),
        () = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    // ...leaves the next message for the next read.
    w.write(b"first").unwrap();
    assert_eq!(reader.read_message().await.unwrap().data, b"first");

    // Race reads against a timer that fires at once, many times, while
    // messages keep arriving: every message is read exactly once, in order.
    let total = 2000u32;
    let mut got = Vec::new();
    let mut cancelled = 0;
    let mut sent = 0;
    for round in 0.. {
        if got.len() == total as usize {
            break;
        }
        // Every third round writes nothing, so the read is pending there.
        if sent < total && round % 3 != 0 {
            w.write(&sent.to_le_bytes()).unwrap();
            sent += 1;
        }
        tokio::select! {
            m = reader.read_message() => got.push(u32::from_le_bytes(m.unwrap().data.try_into().unwrap())),
            () = tokio::task::yield_now() => cancelled += 1,
        }
    }
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    assert!(cancelled > 0, "no read was ever cancelled");
    assert_eq!(reader.info().await.unwrap().count, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_cancelled_while_waiting_for_room_sent_nothing() {
    let (_tmp, ns) = ns();
    let n = name("full");
    // A reader that keeps at most 8 messages in its memory; the rest wait in
    // the kernel, and the writer blocks when that is full.
    let opts = ReaderOptions::default().queue_limit(8, 1 << 20);
    let mut reader = AsyncReader::create_in(&ns, &n, &opts).unwrap();
    let writer = AsyncWriter::open_in(&ns, &n).unwrap();
    let msg = vec![7u8; 4096];
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(50), writer.write(&msg)).await {
            Ok(r) => {
                r.unwrap();
                written += 1;
            }
            // Full: the write waited, then was dropped.
            Err(_) => break,
        }
        assert!(written < 100_000, "the writer never filled up");
    }
    assert!(written > 0);
    for _ in 0..written {
        assert_eq!(reader.read_message().await.unwrap().data, msg);
    }
    assert_eq!(reader.info().await.unwrap().count, 0);
    // Room again: the writer works.
    writer.write(b"again").await.unwrap();
    assert_eq!(reader.read_message().await.unwrap().data, b"again");
}

#[tokio::test(flavor = "current_thread")]
async fn write_batch_coalesces_and_reports_a_closed_reader() {
    let (_tmp, ns) = ns();
    let n = name("batch");
    let mut reader = AsyncReader::create_in(&ns, &n, &ReaderOptions::default()).unwrap();
    let writer = AsyncWriter::open_in(&ns, &n).unwrap();
    let msgs: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let (w, r) = tokio::join!(writer.write_batch(&msgs), async {
        let mut got = Vec::new();
        for _ in 0..msgs.len() {
            got.push(reader.read_message().await.unwrap().data);
        }
        got
    });
    w.unwrap();
    assert_eq!(r, msgs);
    drop(reader);
    let e = writer.write(b"x").await.unwrap_err();
    assert!(matches!(e, mailslot::Error::ReaderClosed { .. }), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn messages_already_in_the_readers_memory_are_not_missed() {
    let (_tmp, ns) = ns();
    let n = name("buffered");
    let mut reader = AsyncReader::create_in(&ns, &n, &ReaderOptions::default()).unwrap();
    let w = Writer::open_in(&ns, &n).unwrap();
    w.write(b"a").unwrap();
    w.write(b"b").unwrap();
    // info() pulls both out of the kernel: epoll has nothing left to report.
    assert_eq!(reader.info().await.unwrap().count, 2);
    let got = tokio::time::timeout(LONG, async {
        [
            reader.read_message().await.unwrap().data,
            reader.read_message().await.unwrap().data,
        ]
    })
    .await
    .unwrap();
    assert_eq!(got, [b"a", b"b"]);
    let inner = reader.into_inner();
    assert_eq!(inner.name(), &n);
}

#[tokio::test(flavor = "current_thread")]
async fn async_writer_refuses_a_shared_slot_instead_of_risking_duplicates() {
    let (_tmp, ns) = ns();
    let n = name("shared");
    let _r = mailslot::Reader::create_in(&ns, &n, &ReaderOptions::default().shared(true)).unwrap();
    let e = AsyncWriter::open_in(&ns, &n).unwrap_err();
    assert!(matches!(e, mailslot::Error::InvalidArgument { .. }), "{e}");
}

/// B42: a read on an empty slot is pending and delivers nothing; a later
/// write wakes it, and it finishes with that whole message.
#[tokio::test(flavor = "current_thread")]
async fn b42_a_pending_read_is_finished_by_a_later_write() {
    let (_tmp, ns) = ns();
    let n = name("b42");
    let mut reader = AsyncReader::create_in(&ns, &n, &ReaderOptions::default()).unwrap();
    let w = Writer::open_in(&ns, &n).unwrap();
    let m = {
        let read = reader.read_message();
        tokio::pin!(read);
        let first = poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "a read on an empty slot gave {first:?}");
        // Another thread writes while the read is pending.
        std::thread::spawn(move || w.write(b"abcd").unwrap())
            .join()
            .unwrap();
        tokio::time::timeout(LONG, read)
            .await
            .expect("the pending read was never woken")
            .unwrap()
    };
    assert_eq!(m.data, b"abcd");
    assert_eq!(m.sender.pid, std::process::id());
    assert_eq!(reader.info().await.unwrap().count, 0);
}
