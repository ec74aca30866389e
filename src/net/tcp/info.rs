//! The kernel's view of a connection (Linux `TCP_INFO`): the TCP state
//! (ESTABLISHED, FIN_WAIT2, TIME_WAIT…), round-trip times, retransmissions,
//! congestion window and counters — what `ss -ti` shows, for one socket.

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
};

use rhai::{Dynamic, Map};

use super::Conn;
use crate::error::{Error, Result};

impl Conn {
    /// The kernel's view of the connection (Linux `TCP_INFO`).
    pub fn info(&self) -> Result<Map> {
        let (Some(local), Some(peer)) = (self.local().ip(), self.peer().ip()) else {
            return Err(Error::invalid(format!(
                "TCP_INFO is not available on a Unix socket ({}); it has no TCP state",
                self.peer()
            )));
        };
        self.with_socket(|fd| info_map(fd, local, peer))
    }
}

/// TCP_INFO of the socket `fd` as a Rhai map, with its two ends.
pub fn info_map(fd: BorrowedFd<'_>, local: SocketAddr, peer: SocketAddr) -> Result<Map> {
    let info =
        tcp_info(fd.as_raw_fd()).map_err(|e| Error::io("reading TCP_INFO", Some(peer), e))?;
    let mut map = Map::new();
    let mut put = |key: &str, value: Dynamic| {
        map.insert(key.into(), value);
    };
    put("state", tcp_state_name(info.tcpi_state).into());
    put("local", local.to_string().into());
    put("peer", peer.to_string().into());
    let numbers: [(&str, u64); 24] = [
        ("rtt_us", info.tcpi_rtt.into()),
        ("rttvar_us", info.tcpi_rttvar.into()),
        ("min_rtt_us", info.tcpi_min_rtt.into()),
        ("rto_us", info.tcpi_rto.into()),
        ("retransmits", info.tcpi_retransmits.into()),
        ("total_retrans", info.tcpi_total_retrans.into()),
        ("lost", info.tcpi_lost.into()),
        ("unacked", info.tcpi_unacked.into()),
        ("sacked", info.tcpi_sacked.into()),
        ("snd_cwnd", info.tcpi_snd_cwnd.into()),
        ("snd_ssthresh", info.tcpi_snd_ssthresh.into()),
        ("snd_mss", info.tcpi_snd_mss.into()),
        ("rcv_mss", info.tcpi_rcv_mss.into()),
        ("pmtu", info.tcpi_pmtu.into()),
        ("rcv_space", info.tcpi_rcv_space.into()),
        ("notsent_bytes", info.tcpi_notsent_bytes.into()),
        ("bytes_acked", info.tcpi_bytes_acked),
        ("bytes_received", info.tcpi_bytes_received),
        ("segs_out", info.tcpi_segs_out.into()),
        ("segs_in", info.tcpi_segs_in.into()),
        ("last_data_sent_ms", info.tcpi_last_data_sent.into()),
        ("last_data_recv_ms", info.tcpi_last_data_recv.into()),
        ("last_ack_recv_ms", info.tcpi_last_ack_recv.into()),
        ("probes", info.tcpi_probes.into()),
    ];
    for (key, value) in numbers {
        put(key, (value.min(i64::MAX as u64) as i64).into());
    }
    Ok(map)
}

/// Linux `TCP_INFO` for the socket `fd`.
fn tcp_info(fd: RawFd) -> std::io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers, for which all-zero is valid; the
    // kernel writes at most `len` bytes into it, and fields a kernel too old
    // to know them does not write stay zero.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live, writable tcp_info and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's TCP state numbers (include/net/tcp_states.h), as `ss` names them.
fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}
