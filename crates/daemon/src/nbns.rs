//! NetBIOS name service packets (RFC 1002 4.2): the library's sans-IO
//! encoder and parser ([`mailslot::net::nbns`]), used here to answer name
//! queries for our names.

pub use mailslot::net::nbns::*;
