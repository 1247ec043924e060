//! Gives the shared library its soname, `libmailslot.so.0`: the major
//! version of the C ABI (see ARCHITECTURE.md, "The C API").
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmailslot.so.0");
}
