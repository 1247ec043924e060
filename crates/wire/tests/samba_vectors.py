"""Golden vectors from an independent encoder: Samba's NDR marshalling.

Run with Debian's /usr/bin/python3 (python3-samba). Prints one line per
vector: "<label> <hex of the UDP payload>". The field values used here are
repeated in samba_vectors.rs, which decodes and re-encodes each vector.
"""

from samba.dcerpc import nbt
from samba.ndr import ndr_pack


def nbt_name(text, suffix):
    name = nbt.name()
    name.name = text
    name.type = suffix
    return name


def datagram(msg_type, flags, dgram_id, src_ip, src, dst, slot, data, priority, timeout):
    trans = nbt.smb_trans_body()
    trans.total_data_count = len(data)
    trans.data_count = len(data)
    trans.timeout = timeout
    trans.data_offset = 70 + len(slot)
    trans.opcode = 1
    trans.priority = priority
    trans._class = 2
    trans.mailslot_name = slot
    trans.data = bytes(data)
    smb = nbt.dgram_smb_packet()
    smb.smb_command = nbt.SMB_TRANSACTION
    smb.body = trans
    msg = nbt.dgram_message()
    msg.dgram_body_type = nbt.DGRAM_SMB
    msg.body = smb
    msg.source_name = nbt_name(*src)
    msg.dest_name = nbt_name(*dst)
    msg.offset = 0
    msg.length = 0
    pkt = nbt.dgram_packet()
    pkt.msg_type = msg_type
    pkt.flags = flags
    pkt.dgram_id = dgram_id
    pkt.src_addr = src_ip
    pkt.src_port = 138
    pkt.data = msg
    # dgram_message.length is not computed by NDR: bytes after the 14-byte header.
    msg.length = len(ndr_pack(pkt)) - 14
    pkt.data = msg
    return ndr_pack(pkt)


def host_announcement():
    ann = nbt.browse_host_announcement()
    ann.UpdateCount = 0
    ann.Periodicity = 720000
    ann.ServerName = "PEERA"
    ann.OSMajor = 4
    ann.OSMinor = 9
    ann.ServerType = 0x00051003
    ann.BroMajorVer = 15
    ann.BroMinorVer = 1
    ann.Signature = 0xAA55
    ann.Comment = "Samba 4.17.12-Debian"
    pkt = nbt.browse_packet()
    pkt.opcode = nbt.HostAnnouncement
    pkt.payload = ann
    return ndr_pack(pkt)


def election():
    req = nbt.browse_election_request()
    req.Version = 1
    req.Criteria = 0x20010F04
    req.UpTime = 123456
    req.Reserved = 0
    req.ServerName = "PEERA"
    pkt = nbt.browse_packet()
    pkt.opcode = nbt.Election
    pkt.payload = req
    return ndr_pack(pkt)


FIRST = nbt.DGRAM_FLAG_FIRST
VECTORS = [
    ("unique-hello", datagram(nbt.DGRAM_DIRECT_UNIQUE, FIRST | nbt.DGRAM_NODE_NBDD, 0x1234, "10.213.0.2",
                              ("PEERB", 0x00), ("PEERA", 0x00), "\\MAILSLOT\\TESTSLOT", b"hello", 1, 1000)),
    ("group-empty", datagram(nbt.DGRAM_DIRECT_GROUP, FIRST | nbt.DGRAM_NODE_M, 0x0001, "10.213.0.1",
                             ("PEERA", 0x00), ("TESTGRP", 0x00), "\\MAILSLOT\\NET\\NETLOGON", b"", 1, 0)),
    ("unique-424", datagram(nbt.DGRAM_DIRECT_UNIQUE, FIRST | nbt.DGRAM_NODE_B, 0x7FFF, "192.168.1.20",
                            ("WORKSTATION1", 0x00), ("SERVER-2", 0x00), "\\MAILSLOT\\TESTSLOT",
                            bytes((i * 7) % 256 for i in range(424)), 0, 0)),
    ("messenger", datagram(nbt.DGRAM_DIRECT_UNIQUE, FIRST | nbt.DGRAM_NODE_M, 0x0203, "10.213.0.2",
                           ("PEERB", 0x00), ("PEERA", 0x03), "\\MAILSLOT\\MESSNGR",
                           b"ALICE\0PEERA\0hello\r\nworld\0", 0, 1000)),
    ("browse-host", datagram(nbt.DGRAM_DIRECT_GROUP, FIRST | nbt.DGRAM_NODE_M, 0x0042, "10.213.0.1",
                             ("PEERA", 0x00), ("TESTGRP", 0x1D), "\\MAILSLOT\\BROWSE", host_announcement(), 1, 0)),
    ("browse-election", datagram(nbt.DGRAM_DIRECT_GROUP, FIRST | nbt.DGRAM_NODE_M, 0x0043, "10.213.0.1",
                                 ("PEERA", 0x00), ("TESTGRP", 0x1E), "\\MAILSLOT\\BROWSE", election(), 1, 0)),
    ("broadcast-star", datagram(nbt.DGRAM_BCAST, FIRST | nbt.DGRAM_NODE_B, 0x0099, "10.213.0.2",
                                ("PEERB", 0x00), ("*", 0x00), "\\MAILSLOT\\EVERYONE", b"to all", 0, 0)),
]

for label, packet in VECTORS:
    print(label, packet.hex())
