//! Binding the workers' UDP sockets in `minPort..=maxPort`.
//!
//! Each worker gets a port of its own while the range has enough free ports. With fewer ports
//! than workers (the single-port case, `minPort == maxPort`), the workers share the ports with
//! `SO_REUSEPORT`; the kernel then spreads peers over the sockets by address, and a worker hands
//! a datagram for a transport it does not own to the worker that owns it. `0..=0` asks the
//! system for a free port per worker.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

const SOCKET_BUFFER: usize = 4 << 20;

fn new_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Bigger buffers ride out bursts (keyframes fanned out to many players); the kernel caps them.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds one socket per worker. Errors name the range that could not be bound.
pub fn bind_worker_sockets(
    ip: IpAddr,
    min_port: u16,
    max_port: u16,
    workers: usize,
) -> io::Result<Vec<UdpSocket>> {
    if min_port == 0 && max_port == 0 {
        return (0..workers)
            .map(|_| new_socket(SocketAddr::new(ip, 0), false))
            .collect();
    }
    let (lo, hi) = (min_port.min(max_port), min_port.max(max_port));
    let range = usize::from(hi - lo) + 1;
    if range >= workers {
        let mut sockets = Vec::with_capacity(workers);
        for port in lo..=hi {
            if sockets.len() == workers {
                break;
            }
            if let Ok(s) = new_socket(SocketAddr::new(ip, port), false) {
                sockets.push(s);
            }
        }
        if sockets.len() == workers {
            return Ok(sockets);
        }
        if sockets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("webrtc: no free UDP port in {lo}-{hi} on {ip}"),
            ));
        }
        // Fewer free ports than workers: the rest share them.
        let shared: Vec<SocketAddr> = sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<_>>()?;
        drop(sockets);
        return share(&shared, workers);
    }
    let addrs: Vec<SocketAddr> = (lo..=hi).map(|p| SocketAddr::new(ip, p)).collect();
    share(&addrs, workers)
}

fn share(addrs: &[SocketAddr], workers: usize) -> io::Result<Vec<UdpSocket>> {
    (0..workers)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            new_socket(addr, true).map_err(|e| {
                io::Error::new(e.kind(), format!("webrtc: cannot bind UDP {addr}: {e}"))
            })
        })
        .collect()
}

/// The addresses to announce in ICE candidates: the configured ones, else the listen address,
/// else (listening on every interface) every local IPv4 address.
pub fn candidate_ips(listen: IpAddr, announced: &[IpAddr]) -> Vec<IpAddr> {
    if !announced.is_empty() {
        return announced.to_vec();
    }
    if !listen.is_unspecified() {
        return vec![listen];
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|list| {
            list.into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4())
                .collect()
        })
        .unwrap_or_default();
    // Non-loopback first: that is what remote peers can reach.
    ips.sort_by_key(|ip| ip.is_loopback());
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_port_is_shared() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let socks = bind_worker_sockets(IpAddr::from([127, 0, 0, 1]), port, port, 3).unwrap();
        assert_eq!(socks.len(), 3);
        for s in &socks {
            assert_eq!(s.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn ephemeral_ports_differ() {
        let socks = bind_worker_sockets(IpAddr::from([127, 0, 0, 1]), 0, 0, 2).unwrap();
        assert_ne!(
            socks[0].local_addr().unwrap(),
            socks[1].local_addr().unwrap()
        );
    }
}
