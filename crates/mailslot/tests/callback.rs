//! The callback reader: delivery in order, prompt stop, panics reported.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mailslot::{CallbackError, CallbackReader, Reader, ReaderOptions, Writer};

mod common;

use common::{LONG, name, ns};

#[test]
fn reader_is_send_so_it_can_move_to_the_callback_thread() {
    fn check<T: Send>() {}
    check::<Reader>();
    check::<CallbackReader>();
    check::<CallbackError>();
}

#[test]
fn callback_gets_every_message_in_order_with_its_sender() {
    let (_tmp, ns) = ns();
    let n = name("cb");
    let (tx, rx) = mpsc::channel();
    let h = CallbackReader::spawn_new_in(&ns, &n, &ReaderOptions::default(), move |m| {
        tx.send(m).unwrap();
    })
    .unwrap();
    assert_eq!(h.name(), r"\\.\mailslot\cb");
    let w = Writer::open_in(&ns, &n).unwrap();
    for i in 0..2000u32 {
        w.write(&i.to_le_bytes()).unwrap();
    }
    w.write(b"").unwrap();
    for i in 0..2000u32 {
        let m = rx.recv_timeout(LONG).unwrap();
        assert_eq!(m.data, i.to_le_bytes());
        assert_eq!(m.sender.pid, std::process::id());
    }
    assert_eq!(rx.recv_timeout(LONG).unwrap().data, b"");
    assert!(!h.is_finished());
    h.stop().unwrap();
}

#[test]
fn stop_is_prompt_while_the_thread_waits_and_returns_the_reader() {
    let (_tmp, ns) = ns();
    let n = name("idle");
    let (tx, rx) = mpsc::channel();
    let h = CallbackReader::spawn_new_in(&ns, &n, &ReaderOptions::default(), move |m| {
        tx.send(m.data).unwrap();
    })
    .unwrap();
    // Make sure the thread is running and has gone back to waiting.
    Writer::open_in(&ns, &n).unwrap().write(b"one").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"one");
    let t = Instant::now();
    let mut reader = h.stop().unwrap();
    let took = t.elapsed();
    eprintln!("stop() took {took:?} while the callback thread was idle");
    assert!(took < Duration::from_millis(100), "stop took {took:?}");
    // The slot still exists, owned by the returned reader, and works as usual.
    let w = Writer::open_in(&ns, &n).unwrap();
    w.write(b"two").unwrap();
    assert_eq!(
        reader.read_message_timeout(Some(LONG)).unwrap().data,
        b"two"
    );
    // No wake-up is left pending on it.
    assert!(matches!(
        reader.read_message_timeout(Some(Duration::from_millis(10))),
        Err(mailslot::Error::TimedOut { .. })
    ));
}

#[test]
fn messages_not_handed_to_the_callback_stay_in_the_returned_reader() {
    let (_tmp, ns) = ns();
    let n = name("leftover");
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = CallbackReader::spawn_new_in(&ns, &n, &ReaderOptions::default(), move |m| {
        tx.send(m.data).unwrap();
        // Hold the thread inside the first callback until told to go on.
        let _ = go_rx.recv();
    })
    .unwrap();
    let w = Writer::open_in(&ns, &n).unwrap();
    for m in [&b"a"[..], b"b", b"c"] {
        w.write(m).unwrap();
    }
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"a");
    // stop() waits for the running callback, then takes no more messages.
    let stopper = std::thread::spawn(move || h.stop());
    drop(go_tx);
    let mut reader = stopper.join().unwrap().unwrap();
    let mut rest = Vec::new();
    while let Ok(m) = reader.read_message_timeout(Some(Duration::ZERO)) {
        rest.push(m.data);
    }
    // Whatever the callback did not get is still there, in order.
    let mut seen: Vec<Vec<u8>> = vec![b"a".to_vec()];
    seen.extend(rx.try_iter());
    seen.extend(rest);
    assert_eq!(seen, [&b"a"[..], b"b", b"c"]);
}

#[test]
fn a_panicking_callback_is_reported_with_its_message_and_the_reader() {
    let (_tmp, ns) = ns();
    let n = name("panics");
    let (tx, rx) = mpsc::channel();
    let h = CallbackReader::spawn_new_in(&ns, &n, &ReaderOptions::default(), move |m| {
        if m.data == b"boom" {
            panic!("callback refused {:?}", String::from_utf8_lossy(&m.data));
        }
        tx.send(m.data).unwrap();
    })
    .unwrap();
    let w = Writer::open_in(&ns, &n).unwrap();
    w.write(b"fine").unwrap();
    w.write(b"boom").unwrap();
    w.write(b"after").unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), b"fine");
    // The thread ends by itself; the process lives on.
    assert_eq!(
        rx.recv_timeout(LONG),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    let e = h.stop().unwrap_err();
    let text = e.to_string();
    assert!(text.contains(r#"callback refused "boom""#), "{text}");
    assert!(text.contains(r"\\.\mailslot\panics"), "{text}");
    assert!(matches!(e, CallbackError::Panicked { .. }));
    // The message after the panic was not taken.
    let mut reader = e.into_reader();
    assert_eq!(
        reader.read_message_timeout(Some(LONG)).unwrap().data,
        b"after"
    );
}

#[test]
fn dropping_the_handle_stops_the_thread_and_removes_the_slot() {
    let (_tmp, ns) = ns();
    let n = name("dropped");
    let h = CallbackReader::spawn_new_in(&ns, &n, &ReaderOptions::default(), |_| {}).unwrap();
    Writer::open_in(&ns, &n).unwrap();
    let t = Instant::now();
    drop(h);
    assert!(t.elapsed() < Duration::from_millis(100));
    assert!(matches!(
        Writer::open_in(&ns, &n),
        Err(mailslot::Error::NotFound { .. })
    ));
}
