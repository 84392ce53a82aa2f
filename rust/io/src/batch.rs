//! Outgoing datagrams batched per poll iteration and sent with `sendmmsg(2)`, a player's
//! packets of one iteration joined into one UDP GSO send where the kernel has it.
//!
//! Fanning one publisher packet out to N players makes N datagrams to N addresses in one go.
//! Sending each with `sendto` costs a system call apiece, and on loopback each call may also be
//! preempted by the receiver it woke. The worker queues them here for the whole poll iteration
//! (every datagram read, deadline and command of one wake-up) and flushes once at its end, or
//! when [`MAX_QUEUED`] datagrams wait.
//!
//! **GSO** (`UDP_SEGMENT`, Linux 4.18+): a video frame is several packets of one size (the
//! packetizer fills each to the MTU) going to the same player, so at the flush each player's
//! packets (in their order) are grouped: consecutive ones of the first one's size, plus one
//! shorter last one, leave as one message with a `UDP_SEGMENT` control message, and the kernel
//! cuts them into datagrams after the socket, route and IP work was done once. What the
//! receiver gets is the same datagrams. A kernel or device that refuses it (EIO, EINVAL,
//! ENOPROTOOPT, EOPNOTSUPP on a segmented send) turns GSO off for the batch's life and the
//! datagrams are sent one by one; `gso` false in [`SendBatch::flush`] (the `webrtc.udpGso`
//! setting) does the same from the start.
//!
//! Linux only; elsewhere `flush` falls back to one `send_to` per datagram.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;

/// At most this many messages per `sendmmsg` call (the kernel's UIO_MAXIOV is 1024).
pub(crate) const MAX_BATCH: usize = 64;
/// Datagrams queued before a flush is forced within the iteration. Enough for four packets to
/// each of 1,000 players (GSO needs several per player); the price is the queued datagrams'
/// memory at the peak, about 5 MiB per busy worker, which the allocator keeps.
pub(crate) const MAX_QUEUED: usize = 4096;
/// Segments per GSO message (the kernel allows 64).
pub(crate) const MAX_SEGMENTS: usize = 32;
/// Bytes per GSO message (one IP datagram's worth, less headers).
pub(crate) const MAX_GSO_BYTES: usize = 60_000;

/// One message of a flush: `count` datagrams from `order[first..]`, cut at `segment` bytes
/// (all but the last exactly that long) when `count` > 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg {
    pub first: usize,
    pub count: usize,
    pub segment: usize,
}

/// Queued datagrams for one socket.
pub(crate) struct SendBatch {
    items: Vec<(SocketAddr, BytesMut)>,
    /// Scratch for a flush: item indexes grouped by destination, and the messages.
    order: Vec<usize>,
    msgs: Vec<Msg>,
    /// The kernel refused a segmented send once: no GSO from then on.
    gso_refused: bool,
}

/// What a flush did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Messages that carried more than one datagram (GSO).
    pub gso_messages: u64,
}

/// Groups datagrams (destination, length) into messages: with `gso`, each destination's
/// datagrams in order (destinations in address order), consecutive ones of the first one's
/// length plus at most one shorter, within [`MAX_SEGMENTS`] and [`MAX_GSO_BYTES`]; without,
/// one message per datagram in queue order.
pub(crate) fn plan(
    items: &[(SocketAddr, usize)],
    gso: bool,
    order: &mut Vec<usize>,
    msgs: &mut Vec<Msg>,
) {
    order.clear();
    msgs.clear();
    order.extend(0..items.len());
    if !gso {
        msgs.extend((0..items.len()).map(|i| Msg {
            first: i,
            count: 1,
            segment: items[i].1,
        }));
        return;
    }
    order.sort_by_key(|&i| items[i].0); // stable: a destination's datagrams keep their order
    let mut k = 0;
    while k < order.len() {
        let (to, segment) = items[order[k]];
        let mut count = 1;
        let mut bytes = segment;
        while k + count < order.len() && count < MAX_SEGMENTS {
            let (next_to, len) = items[order[k + count]];
            if next_to != to || len > segment || bytes + len > MAX_GSO_BYTES || segment == 0 {
                break;
            }
            count += 1;
            bytes += len;
            if len < segment {
                break; // a shorter datagram ends the message
            }
        }
        msgs.push(Msg {
            first: k,
            count,
            segment,
        });
        k += count;
    }
}

impl SendBatch {
    pub(crate) fn new() -> SendBatch {
        SendBatch {
            items: Vec::with_capacity(MAX_BATCH),
            order: Vec::new(),
            msgs: Vec::new(),
            gso_refused: false,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= MAX_QUEUED
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn push(&mut self, to: SocketAddr, data: BytesMut) {
        self.items.push((to, data));
    }

    /// Sends everything queued through `socket` (`gso`: group a destination's datagrams into
    /// segmented sends). Datagrams the kernel refuses (a full socket buffer, an unreachable
    /// address) are counted as errors and dropped: UDP media is not retried here, NACK does that.
    pub(crate) fn flush(&mut self, socket: &mio::net::UdpSocket, gso: bool) -> Flushed {
        let mut done = Flushed::default();
        if self.items.is_empty() {
            return done;
        }
        #[cfg(target_os = "linux")]
        {
            let gso = gso && !self.gso_refused;
            let lens: Vec<(SocketAddr, usize)> =
                self.items.iter().map(|(a, d)| (*a, d.len())).collect();
            let (mut order, mut msgs) = (
                std::mem::take(&mut self.order),
                std::mem::take(&mut self.msgs),
            );
            plan(&lens, gso, &mut order, &mut msgs);
            let mut m = 0;
            while m < msgs.len() {
                match sendmmsg(socket, &self.items, &order, &msgs[m..]) {
                    Ok(0) => {
                        // Should not happen; avoid spinning.
                        done.errors += msgs[m..].iter().map(|x| x.count as u64).sum::<u64>();
                        break;
                    }
                    Ok(n) => {
                        for msg in &msgs[m..m + n] {
                            done.gso_messages += u64::from(msg.count > 1);
                            for &i in &order[msg.first..msg.first + msg.count] {
                                done.packets += 1;
                                done.bytes += self.items[i].1.len() as u64;
                            }
                        }
                        m += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if msgs[m].count > 1 && gso_unsupported(&e) => {
                        // This kernel or device cannot segment: one datagram per message from
                        // now on (the rest of this flush too).
                        log::warn!(target: "pms_io::worker", "UDP GSO refused ({e}); sending datagrams one by one");
                        self.gso_refused = true;
                        let rest: Vec<usize> = msgs[m..]
                            .iter()
                            .flat_map(|x| order[x.first..x.first + x.count].to_vec())
                            .collect();
                        msgs.truncate(m);
                        for i in rest {
                            order.push(i);
                            msgs.push(Msg {
                                first: order.len() - 1,
                                count: 1,
                                segment: self.items[i].1.len(),
                            });
                        }
                    }
                    Err(_) => {
                        // The first message failed: drop it and go on with the rest.
                        done.errors += msgs[m].count as u64;
                        m += 1;
                    }
                }
            }
            self.order = order;
            self.msgs = msgs;
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = gso;
            for (to, d) in &self.items {
                match socket.send_to(d, *to) {
                    Ok(n) => {
                        done.packets += 1;
                        done.bytes += n as u64;
                    }
                    Err(_) => done.errors += 1,
                }
            }
        }
        self.items.clear();
        done
    }
}

#[cfg(target_os = "linux")]
fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// `UDP_SEGMENT` from linux/udp.h (libc does not name it for every target).
#[cfg(target_os = "linux")]
const UDP_SEGMENT: libc::c_int = 103;

/// One `sendmmsg` call over the first [`MAX_BATCH`] of `msgs`; returns how many messages the
/// kernel took.
#[cfg(target_os = "linux")]
fn sendmmsg(
    socket: &mio::net::UdpSocket,
    items: &[(SocketAddr, BytesMut)],
    order: &[usize],
    msgs: &[Msg],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    /// Room for one `cmsghdr` carrying a u16, 8-byte aligned.
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct CmsgBuf([u8; 32]);

    let n = msgs.len().min(MAX_BATCH);
    let segs: usize = msgs[..n].iter().map(|m| m.count).sum();
    // SAFETY: zeroed sockaddr_storage, iovec, mmsghdr and byte buffers are valid values.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; n];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; segs];
    let mut cmsgs: Vec<CmsgBuf> = vec![CmsgBuf([0; 32]); n];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
    let mut v = 0;
    for (j, msg) in msgs[..n].iter().enumerate() {
        let to = items[order[msg.first]].0;
        let len = write_sockaddr(&to, &mut addrs[j]);
        for &i in &order[msg.first..msg.first + msg.count] {
            let data = &items[i].1;
            iovs[v] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            v += 1;
        }
        let h = &mut hdrs[j].msg_hdr;
        h.msg_name = &mut addrs[j] as *mut libc::sockaddr_storage as *mut libc::c_void;
        h.msg_namelen = len;
        h.msg_iov = &mut iovs[v - msg.count];
        h.msg_iovlen = msg.count as _;
        if msg.count > 1 {
            // SAFETY: the buffer is 8-byte aligned and holds CMSG_SPACE(2) bytes (24 on 64-bit
            // Linux, 16 on 32-bit); CMSG_FIRSTHDR/CMSG_DATA stay inside it.
            unsafe {
                let space = libc::CMSG_SPACE(2) as usize;
                h.msg_control = cmsgs[j].0.as_mut_ptr() as *mut libc::c_void;
                h.msg_controllen = space as _;
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, msg.segment as u16);
            }
        }
    }
    // SAFETY: every pointer in hdrs points into addrs/iovs/cmsgs/items, which outlive the
    // call; the kernel only reads them.
    let sent =
        unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
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

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn plan_groups_a_destinations_equal_packets_and_one_shorter_last() {
        let (a, b) = (addr(2), addr(1));
        // Interleaved as a fan-out makes them: packet k to a, then to b.
        let items = [
            (a, 1200),
            (b, 1200),
            (a, 1200),
            (b, 1200),
            (a, 700),
            (b, 1200),
            (a, 1200),
            (b, 90),
        ];
        let (mut order, mut msgs) = (Vec::new(), Vec::new());
        plan(&items, true, &mut order, &mut msgs);
        // b (lower address) first: 1200 x3 + 90; then a: 1200 x2 + 700, then a lone 1200.
        assert_eq!(order, vec![1, 3, 5, 7, 0, 2, 4, 6]);
        let m = |first, count, segment| Msg {
            first,
            count,
            segment,
        };
        assert_eq!(msgs, vec![m(0, 4, 1200), m(4, 3, 1200), m(7, 1, 1200)]);
        // Without GSO: one message per datagram, in queue order.
        plan(&items, false, &mut order, &mut msgs);
        assert_eq!(msgs.len(), 8);
        assert_eq!(order, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn plan_limits_segments_bytes_and_never_grows_a_segment() {
        let a = addr(1);
        let items: Vec<(SocketAddr, usize)> = (0..80).map(|_| (a, 1000)).collect();
        let (mut order, mut msgs) = (Vec::new(), Vec::new());
        plan(&items, true, &mut order, &mut msgs);
        assert_eq!(
            msgs.iter().map(|m| m.count).collect::<Vec<_>>(),
            vec![MAX_SEGMENTS, MAX_SEGMENTS, 80 - 2 * MAX_SEGMENTS]
        );
        let big: Vec<(SocketAddr, usize)> = (0..10).map(|_| (a, 9000)).collect();
        plan(&big, true, &mut order, &mut msgs);
        assert!(msgs.iter().all(|m| m.count * 9000 <= MAX_GSO_BYTES));
        // A longer packet after shorter ones starts a new message.
        plan(
            &[(a, 100), (a, 100), (a, 1200)],
            true,
            &mut order,
            &mut msgs,
        );
        assert_eq!(msgs.iter().map(|m| m.count).collect::<Vec<_>>(), vec![2, 1]);
    }

    fn receivers(n: usize) -> (mio::net::UdpSocket, Vec<std::net::UdpSocket>) {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_sock.set_nonblocking(true).unwrap();
        let rs = (0..n)
            .map(|_| {
                let r = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                r.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                r
            })
            .collect();
        (mio::net::UdpSocket::from_std(std_sock), rs)
    }

    #[test]
    fn batch_reaches_every_receiver() {
        let (sender, receivers) = receivers(100);
        let mut batch = SendBatch::new();
        for (i, r) in receivers.iter().enumerate() {
            batch.push(r.local_addr().unwrap(), BytesMut::from(&[i as u8; 40][..]));
        }
        let done = batch.flush(&sender, false);
        assert_eq!(
            done,
            Flushed {
                packets: 100,
                bytes: 4000,
                errors: 0,
                gso_messages: 0,
            }
        );
        for (i, r) in receivers.iter().enumerate() {
            let mut buf = [0u8; 64];
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8; 40][..]);
        }
    }

    /// With GSO each receiver gets exactly the datagrams it was sent, in order (segmented by
    /// the kernel, or one by one where the kernel refuses: then GSO is off for good).
    #[test]
    fn gso_delivers_the_same_datagrams_or_falls_back() {
        let (sender, receivers) = receivers(10);
        let mut batch = SendBatch::new();
        let sizes = [1200usize, 1200, 1200, 1200, 500];
        for (k, len) in sizes.iter().enumerate() {
            for (i, r) in receivers.iter().enumerate() {
                let mut d = BytesMut::from(&vec![i as u8; *len][..]);
                d[0] = k as u8;
                batch.push(r.local_addr().unwrap(), d);
            }
        }
        let done = batch.flush(&sender, true);
        assert_eq!(done.packets, 50);
        assert_eq!(done.errors, 0);
        assert!(
            done.gso_messages == 10 || batch.gso_refused,
            "{done:?}: neither segmented nor refused"
        );
        for (i, r) in receivers.iter().enumerate() {
            for (k, len) in sizes.iter().enumerate() {
                let mut buf = [0u8; 2048];
                let n = r.recv(&mut buf).unwrap();
                assert_eq!(n, *len, "receiver {i} datagram {k}");
                assert_eq!(buf[0], k as u8);
                assert!(buf[1..n].iter().all(|b| *b == i as u8));
            }
        }
        // A second flush after a refusal keeps working without GSO.
        batch.push(
            receivers[0].local_addr().unwrap(),
            BytesMut::from(&[7u8; 10][..]),
        );
        assert_eq!(batch.flush(&sender, true).packets, 1);
    }
}
