//! The client's address: recorded by the server when it accepts a connection, read by
//! the front ends for `aws:SourceIp`. Its own module so that front ends need nothing
//! from the server above them.

use std::net::SocketAddr;

/// The connection's remote address, put in every request's extensions at accept.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address (`aws:SourceIp`).
pub fn peer_ip(ext: &axum::http::Extensions) -> Option<String> {
    ext.get::<PeerAddr>()
        .map(|p| p.0.ip().to_canonical().to_string())
}
