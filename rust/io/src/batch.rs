//! Outgoing datagrams batched per wakeup and sent with one `sendmmsg(2)` call.
//!
//! Fanning one publisher packet out to N players makes N datagrams to N addresses in one go.
//! Sending each with `sendto` costs a system call apiece, and on loopback each call may also be
//! preempted by the receiver it woke. The worker queues them here instead and flushes once per
//! input (datagram, deadline, command), or when the batch is full.
//!
//! Linux only; elsewhere `flush` falls back to one `send_to` per datagram.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;

/// At most this many datagrams per system call (the kernel's UIO_MAXIOV is 1024).
pub(crate) const MAX_BATCH: usize = 64;

/// Queued datagrams for one socket.
pub(crate) struct SendBatch {
    items: Vec<(SocketAddr, BytesMut)>,
}

/// What a flush did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl SendBatch {
    pub(crate) fn new() -> SendBatch {
        SendBatch {
            items: Vec::with_capacity(MAX_BATCH),
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= MAX_BATCH
    }

    pub(crate) fn push(&mut self, to: SocketAddr, data: BytesMut) {
        self.items.push((to, data));
    }

    /// Sends everything queued through `socket`. Datagrams the kernel refuses (a full socket
    /// buffer, an unreachable address) are counted as errors and dropped: UDP media is not
    /// retried here, NACK does that.
    pub(crate) fn flush(&mut self, socket: &mio::net::UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        if self.items.is_empty() {
            return done;
        }
        #[cfg(target_os = "linux")]
        {
            let mut start = 0;
            while start < self.items.len() {
                match sendmmsg(socket, &self.items[start..]) {
                    Ok(0) => {
                        // Should not happen; avoid spinning.
                        done.errors += (self.items.len() - start) as u64;
                        break;
                    }
                    Ok(n) => {
                        for (_, d) in &self.items[start..start + n] {
                            done.packets += 1;
                            done.bytes += d.len() as u64;
                        }
                        start += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        // The first datagram failed: drop it and go on with the rest.
                        done.errors += 1;
                        start += 1;
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        for (to, d) in &self.items {
            match socket.send_to(d, *to) {
                Ok(n) => {
                    done.packets += 1;
                    done.bytes += n as u64;
                }
                Err(_) => done.errors += 1,
            }
        }
        self.items.clear();
        done
    }
}

/// One `sendmmsg` call over `items`; returns how many datagrams the kernel took.
#[cfg(target_os = "linux")]
fn sendmmsg(socket: &mio::net::UdpSocket, items: &[(SocketAddr, BytesMut)]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    let n = items.len().min(MAX_BATCH);
    // SAFETY: zeroed sockaddr_storage, iovec and mmsghdr are valid values (plain C structs).
    let mut addrs: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for (i, (to, data)) in items[..n].iter().enumerate() {
        let len = write_sockaddr(to, &mut addrs[i]);
        iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        msgs[i].msg_hdr.msg_name =
            &mut addrs[i] as *mut libc::sockaddr_storage as *mut libc::c_void;
        msgs[i].msg_hdr.msg_namelen = len;
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every pointer in msgs points into addrs/iovs/items, which outlive the call; the
    // kernel only reads the buffers.
    let sent =
        unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

#[cfg(target_os = "linux")]
fn write_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_reaches_every_receiver() {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_sock.set_nonblocking(true).unwrap();
        let sender = mio::net::UdpSocket::from_std(std_sock);
        let receivers: Vec<std::net::UdpSocket> = (0..100)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut batch = SendBatch::new();
        for (i, r) in receivers.iter().enumerate() {
            batch.push(r.local_addr().unwrap(), BytesMut::from(&[i as u8; 40][..]));
        }
        let done = batch.flush(&sender);
        assert_eq!(
            done,
            Flushed {
                packets: 100,
                bytes: 4000,
                errors: 0
            }
        );
        for (i, r) in receivers.iter().enumerate() {
            let mut buf = [0u8; 64];
            r.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8; 40][..]);
        }
    }
}
