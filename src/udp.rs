//! UDP sockets for QUIC endpoints, with kernel buffers sized for bursts.
//!
//! A hub's one socket takes the datagrams of every client. With the
//! kernel's default receive buffer (about 200 KiB) a burst that arrives
//! while the process is off the CPU overflows it; QUIC recovers the lost
//! packets, but only after loss detection, so the messages in them arrive
//! milliseconds to seconds late. The kernel caps the size asked for at
//! `net.core.rmem_max` / `net.core.wmem_max`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive and send buffer a hub asks for.
pub const SERVER_BUFFER_BYTES: usize = 8 << 20;
/// Receive and send buffer a client asks for.
pub const CLIENT_BUFFER_BYTES: usize = 2 << 20;

/// A non-blocking UDP socket bound to `addr` with (up to) `buffer` bytes of
/// receive and send buffer.
pub fn bind(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer than asked for still works.
    if let Err(err) = socket.set_recv_buffer_size(buffer) {
        tracing::debug!("cannot set the UDP receive buffer: {err}");
    }
    if let Err(err) = socket.set_send_buffer_size(buffer) {
        tracing::debug!("cannot set the UDP send buffer: {err}");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The receive buffer the kernel actually gave `socket`.
pub fn recv_buffer(socket: &std::net::UdpSocket) -> io::Result<usize> {
    socket2::SockRef::from(socket).recv_buffer_size()
}

/// A QUIC endpoint (server if `server` is given) on a socket from [`bind`].
pub fn endpoint(
    addr: SocketAddr,
    buffer: usize,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    let socket = bind(addr, buffer)?;
    if server.is_some()
        && let Ok(reported) = recv_buffer(&socket)
    {
        // Linux reports twice what it grants (the rest is its bookkeeping).
        let granted = if cfg!(target_os = "linux") {
            reported / 2
        } else {
            reported
        };
        if granted < buffer {
            tracing::warn!(
                "the UDP receive buffer is {} KiB of the {} KiB asked for; raise net.core.rmem_max to absorb bursts",
                granted / 1024,
                buffer / 1024
            );
        }
    }
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_get_a_larger_receive_buffer_than_the_default() {
        let default = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = recv_buffer(&default).unwrap();
        let sized = bind("127.0.0.1:0".parse().unwrap(), SERVER_BUFFER_BYTES).unwrap();
        let sized = recv_buffer(&sized).unwrap();
        // Only larger where the kernel allows more than its default.
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|max| max.trim().parse().ok())
            .unwrap_or(0);
        if max > default {
            assert!(
                sized > default,
                "asked for more, got {sized} (default {default})"
            );
        }
        assert!(sized >= default);
    }
}
