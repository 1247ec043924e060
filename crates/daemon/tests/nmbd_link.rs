//! The daemon's link to nmbd's unexpected socket, against a stand-in nmbd
//! on a real Unix socket: the query it sends, what it takes from the
//! stream, and how it recovers from a broken stream and a restart. Time is
//! virtual (the backoff takes `now` as an argument).

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use mailslot_daemon::nmbd::{
    BACKOFF_MIN, DGRAM_PACKET, HEADER_LEN, Link, LinkNote, MAX_PACKET, Packet, QUERY_LEN,
    SOCKET_NAME, encode_query,
};

/// A packet framed as nmbd frames it (native layout, 64-bit Linux offsets
/// computed from the header length).
fn frame(ip: [u8; 4], port: i32, payload: &[u8]) -> Vec<u8> {
    let word = size_of::<usize>();
    let mut h = vec![0u8; HEADER_LEN];
    h[..word].copy_from_slice(&payload.len().to_ne_bytes());
    h[word..word + 4].copy_from_slice(&DGRAM_PACKET.to_ne_bytes());
    let ip_at = HEADER_LEN - 8;
    h[ip_at..ip_at + 4].copy_from_slice(&ip);
    h[ip_at + 4..ip_at + 8].copy_from_slice(&port.to_ne_bytes());
    h.extend_from_slice(payload);
    h
}

/// Accepts one client and checks its query: datagrams, all mailslots.
fn accept_query(listener: &UnixListener) -> UnixStream {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut q = vec![0u8; QUERY_LEN];
    s.read_exact(&mut q).unwrap();
    assert_eq!(q, encode_query(None));
    s
}

/// Reads until the link has nothing more for 200 ms (or is lost),
/// collecting packets and notes.
fn drain(link: &mut Link, now: Duration) -> (Vec<Packet>, Vec<LinkNote>) {
    let mut packets = Vec::new();
    let mut notes = Vec::new();
    loop {
        if let Some(n) = link.read(now, 1000, |p| packets.push(p)) {
            let lost = matches!(n, LinkNote::Lost { .. });
            notes.push(n);
            if lost {
                break;
            }
        }
        // The stand-in's bytes may come in pieces: wait for more, briefly.
        let Some(fd) = link.fd() else { break };
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let quiet = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        if rustix::event::poll(&mut fds, Some(&quiet)).unwrap() == 0 {
            break;
        }
    }
    (packets, notes)
}

#[test]
fn link_takes_datagrams_then_recovers_from_a_broken_stream_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    let mut link = Link::new(dir.path());
    let mut now = Duration::ZERO;

    // No nmbd yet: one failure note, then silence until the backoff is due.
    match link.maintain(now) {
        Some(LinkNote::ConnectFailed { retry_in, .. }) => assert_eq!(retry_in, BACKOFF_MIN),
        other => panic!("{other:?}"),
    }
    assert!(link.fd().is_none());
    assert_eq!(link.wait(now), Some(BACKOFF_MIN));
    now += BACKOFF_MIN;
    assert!(
        link.maintain(now).is_none(),
        "a repeated failure is noted once"
    );

    // nmbd starts: the link connects, sends its query and nothing else.
    let listener = UnixListener::bind(&path).unwrap();
    now += Duration::from_secs(1);
    assert!(link.maintain(now).is_none());
    let mut server = accept_query(&listener);
    server.write_all(&[0]).unwrap();
    server
        .write_all(&frame([10, 213, 0, 2], 138, b"first datagram"))
        .unwrap();
    server
        .write_all(&frame([192, 168, 1, 9], 40000, &[0xab; 900]))
        .unwrap();
    let (packets, notes) = drain(&mut link, now);
    assert!(matches!(notes[..], [LinkNote::Connected]), "{notes:?}");
    assert_eq!(packets.len(), 2);
    assert_eq!(
        packets[0].from,
        "10.213.0.2:138".parse::<SocketAddrV4>().unwrap()
    );
    assert_eq!(packets[0].bytes, b"first datagram");
    assert_eq!(packets[1].from.port(), 40000);
    assert_eq!(packets[1].bytes.len(), 900);
    server.set_nonblocking(true).unwrap();
    let mut extra = [0u8; 1];
    assert!(
        server.read(&mut extra).is_err(),
        "the link wrote after its query (nmbd drops such clients)"
    );

    // A length past 64 KiB: the link drops the connection instead of
    // buffering, and waits BACKOFF_MIN before trying again.
    let mut huge = frame([10, 213, 0, 2], 138, b"");
    huge[..size_of::<usize>()].copy_from_slice(&(MAX_PACKET + 1).to_ne_bytes());
    server.write_all(&huge).unwrap();
    let (packets, notes) = drain(&mut link, now);
    assert!(packets.is_empty());
    match &notes[..] {
        [LinkNote::Lost { why, retry_in }] => {
            assert!(why.contains("65537"), "{why}");
            assert_eq!(*retry_in, BACKOFF_MIN);
        }
        other => panic!("{other:?}"),
    }
    server.set_nonblocking(false).unwrap();
    assert_eq!(
        server.read(&mut extra).unwrap(),
        0,
        "the link closed its end"
    );
    assert!(link.maintain(now).is_none());
    assert!(
        link.fd().is_none(),
        "reconnected before the backoff was due"
    );

    // It reconnects once due; nmbd restarts (a new socket at the same path)
    // and the link follows.
    now += BACKOFF_MIN;
    assert!(link.maintain(now).is_none());
    let mut server = accept_query(&listener);
    server.write_all(&[0]).unwrap();
    let (_, notes) = drain(&mut link, now);
    assert!(matches!(notes[..], [LinkNote::Connected]), "{notes:?}");
    drop(server);
    drop(listener);
    std::fs::remove_file(&path).unwrap();
    let (_, notes) = drain(&mut link, now);
    assert!(
        matches!(&notes[..], [LinkNote::Lost { why, .. }] if why.contains("closed")),
        "{notes:?}"
    );
    let listener = UnixListener::bind(&path).unwrap();
    now += Duration::from_secs(10);
    assert!(link.maintain(now).is_none());
    let mut server = accept_query(&listener);
    server.write_all(&[0]).unwrap();
    server
        .write_all(&frame([10, 213, 0, 3], 138, b"after restart"))
        .unwrap();
    let (packets, notes) = drain(&mut link, now);
    assert!(matches!(notes[..], [LinkNote::Connected]), "{notes:?}");
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].bytes, b"after restart");
}

#[test]
fn a_wrong_acknowledgement_is_a_lost_link_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join(SOCKET_NAME)).unwrap();
    let mut link = Link::new(dir.path());
    assert!(link.maintain(Duration::ZERO).is_none());
    let mut server = accept_query(&listener);
    server.write_all(&[7]).unwrap();
    let (packets, notes) = drain(&mut link, Duration::ZERO);
    assert!(packets.is_empty());
    assert!(
        matches!(&notes[..], [LinkNote::Lost { why, .. }] if why.contains("0x07")),
        "{notes:?}"
    );
}
