//! Tests of the image store and layer unpacker. They build every archive themselves,
//! malicious ones with raw tar headers. They expect to run as root (mknod, chown, trusted.*
//! xattrs), as the agent does.

mod build;
mod resolve;
mod store;
mod unpack;
mod util;
