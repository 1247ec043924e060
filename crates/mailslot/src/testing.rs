//! What the crate's own tests share.

use crate::{Namespace, Reader, ReaderOptions, SlotName, Writer};

/// A reader (with `opts`) and a writer of slot `bare` in a namespace of
/// their own, whose messages go through the ring: the first ones, which
/// open it, are written and read here.
pub(crate) fn ring_pair(bare: &str, opts: &ReaderOptions) -> (tempfile::TempDir, Reader, Writer) {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    let name = SlotName::from_bare(bare).unwrap();
    let mut reader = Reader::create_in(&ns, &name, opts).unwrap();
    let writer = Writer::open_in(&ns, &name).unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..2 {
        writer.write(b"warm").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
    }
    (tmp, reader, writer)
}
