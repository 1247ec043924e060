//! `Writer::open_destination_with` sends real NetBIOS datagrams: a UDP
//! socket on 127.0.0.1 plays the peer, and decodes what arrives with the
//! wire codec.
#![cfg(feature = "network")]

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use mailslot::{
    Destination, Error, Namespace, Reader, ReaderOptions, RemoteOrigin, Route, SendOptions, Writer,
};
use mailslot_wire::{DataKind, NetbiosName, ReceivedMailslot, decode_mailslot_datagram};

/// The "peer": a UDP socket on an ephemeral loopback port.
fn peer() -> (UdpSocket, u16) {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn opts(port: u16) -> SendOptions {
    SendOptions {
        port,
        ..SendOptions::new(
            NetbiosName::new("LINUXBOX", 0).unwrap(),
            NetbiosName::new("OFFICE", 0).unwrap(),
        )
    }
}

fn receive(s: &UdpSocket) -> ReceivedMailslot {
    let mut buf = [0u8; 1024];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    decode_mailslot_datagram(&buf[..n]).unwrap()
}

fn nothing_arrives(s: &UdpSocket) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let e = s.recv_from(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{e}"
    );
}

fn name(s: &str) -> NetbiosName {
    s.parse().unwrap()
}

#[test]
fn host_destination_sends_one_direct_unique_datagram_per_write() {
    let (peer, port) = peer();
    let o = SendOptions {
        address: Some(Ipv4Addr::LOCALHOST),
        ..opts(port)
    };
    let dest = Destination::parse(r"\\PeerA\mailslot\Chat").unwrap();
    let w = Writer::open_destination_with(&dest, &o, None).unwrap();
    assert_eq!(
        w.route(),
        Some(&Route::Unique(name("PEERA<00>"), Ipv4Addr::LOCALHOST))
    );
    assert_eq!(w.datagrams_per_message(), 1);
    assert_eq!(w.max_message_size(), 424);

    w.write(b"hello").unwrap();
    let d = receive(&peer);
    assert_eq!(d.kind, DataKind::DirectUnique);
    assert!(d.destination_name.same_name(&name("PEERA<00>")));
    assert!(d.source_name.same_name(&name("LINUXBOX<00>")));
    assert_eq!(d.source_ip, Ipv4Addr::LOCALHOST);
    assert_eq!(d.source_port, 138);
    assert!(d.mailslot.eq_ignore_ascii_case("Chat"), "{}", d.mailslot);
    assert_eq!(d.data, b"hello");

    // A batch is one datagram per message, in order, with fresh ids.
    w.write_batch(&[&b"one"[..], b"", b"three"]).unwrap();
    let got: Vec<ReceivedMailslot> = (0..3).map(|_| receive(&peer)).collect();
    let data: Vec<&[u8]> = got.iter().map(|d| &d.data[..]).collect();
    assert_eq!(data, [&b"one"[..], b"", b"three"]);
    assert_ne!(got[0].id, got[1].id);

    // A dotted quad is a host too, sent to that address.
    let dest = Destination::parse(r"\\127.0.0.1\mailslot\x").unwrap();
    let w = Writer::open_destination_with(&dest, &opts(port), None).unwrap();
    w.write(b"by address").unwrap();
    let d = receive(&peer);
    assert_eq!(d.kind, DataKind::DirectUnique);
    assert_eq!(d.data, b"by address");
}

#[test]
fn oversized_message_is_refused_with_the_limit_and_nothing_is_sent() {
    let (peer, port) = peer();
    let o = SendOptions {
        address: Some(Ipv4Addr::LOCALHOST),
        ..opts(port)
    };
    let dest = Destination::parse(r"\\PEERA\mailslot\x").unwrap();
    let w = Writer::open_destination_with(&dest, &o, None).unwrap();
    let e = w.write(&[b'y'; 425]).unwrap_err();
    assert!(matches!(e, Error::Network(_)), "{e:?}");
    assert!(e.to_string().contains("at most 424 bytes"), "{e}");
    // In a batch, every size is checked before the first is sent.
    let (sent, e) = w.write_batch(&[&b"fits"[..], &[0; 425]]).unwrap_err();
    assert_eq!(sent, 0);
    assert!(e.to_string().contains("424"), "{e}");
    nothing_arrives(&peer);
    // A long slot name leaves less room: 443 bytes in all.
    let long = "n".repeat(100);
    let dest = Destination::parse(&format!(r"\\PEERA\mailslot\{long}")).unwrap();
    let w = Writer::open_destination_with(&dest, &o, None).unwrap();
    let e = w.write(&[0; 424]).unwrap_err();
    assert!(e.to_string().contains("443"), "{e}");
    nothing_arrives(&peer);
    w.write(&[0; 100]).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(receive(&peer).data.len(), 100);
}

#[test]
fn group_destinations_send_direct_group_to_the_domain() {
    let (peer, port) = peer();
    // The test socket's address stands in for the broadcast address.
    let o = SendOptions {
        broadcast: Some(Ipv4Addr::LOCALHOST),
        ..opts(port)
    };
    for (path, group, to) in [
        (r"\\*\mailslot\x", false, "OFFICE<00>"),
        (r"\\office\mailslot\x", false, "OFFICE<00>"),
        (r"\\SALES\mailslot\x", true, "SALES<00>"),
    ] {
        let o = SendOptions { group, ..o.clone() };
        let w =
            Writer::open_destination_with(&Destination::parse(path).unwrap(), &o, None).unwrap();
        assert_eq!(w.route(), Some(&Route::Group(name(to))), "{path}");
        w.write(path.as_bytes()).unwrap();
        let d = receive(&peer);
        assert_eq!(d.kind, DataKind::DirectGroup, "{path}");
        assert!(
            d.destination_name.same_name(&name(to)),
            "{path}: {}",
            d.destination_name
        );
        assert!(d.source_name.same_name(&name("LINUXBOX<00>")));
        assert_eq!(d.data, path.as_bytes());
    }
}

#[test]
fn remote_writer_refuses_local_only_operations_and_exposes_its_socket() {
    let (_peer, port) = peer();
    let o = SendOptions {
        address: Some(Ipv4Addr::LOCALHOST),
        ..opts(port)
    };
    let w = Writer::open_destination_with(
        &Destination::parse(r"\\PEERA\mailslot\x").unwrap(),
        &o,
        None,
    )
    .unwrap();
    let origin = RemoteOrigin::new(Ipv4Addr::LOCALHOST, 138, "X<00>", "PEERA<00>");
    let e = w.write_remote(b"x", &origin).unwrap_err();
    assert!(matches!(e, Error::LocalOnly { .. }), "{e:?}");
    assert!(e.to_string().contains(r"\\PEERA\mailslot\x"), "{e}");
    // The descriptor is the UDP socket.
    let t = rustix::net::sockopt::socket_type(w.as_fd()).unwrap();
    assert_eq!(t, rustix::net::SocketType::DGRAM);
}

#[test]
fn our_own_name_is_delivered_to_the_local_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let slot = mailslot::SlotName::parse(r"\\.\mailslot\here").unwrap();
    let mut reader = Reader::create_in(&ns, &slot, &ReaderOptions::default()).unwrap();
    let (peer, port) = peer();
    let dest = Destination::parse(r"\\linuxbox\mailslot\HERE").unwrap();
    let w = Writer::open_destination_with(&dest, &opts(port), Some(&ns)).unwrap();
    assert_eq!(w.route(), None);
    w.write(b"to myself").unwrap();
    let m = reader.read_message().unwrap();
    assert_eq!(m.data, b"to myself");
    assert_eq!(m.sender.pid, std::process::id());
    nothing_arrives(&peer);
    // `\\.` opens the local slot as well.
    let w =
        Writer::open_destination_with(&Destination::Local(slot), &opts(port), Some(&ns)).unwrap();
    w.write(b"local").unwrap();
    assert_eq!(reader.read_message().unwrap().data, b"local");
}
