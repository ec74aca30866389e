//! Building the lab: one network namespace per node, made by
//! `unshare(CLONE_NEWNET)` on a thread of its own and held only by a file
//! descriptor (never bind-mounted under /run/netns), then joined in a line
//! by veth pairs over rtnetlink, with addresses, routes both ways and
//! forwarding on in the routers.
//!
//! Each veth pair is created inside the namespace of its client-side node
//! with its peer put straight into the next node's namespace (the peer's
//! `IFLA_NET_NS_FD`), so nothing ever exists in netsh's own namespace. A
//! netlink socket belongs to the namespace it was opened in: the builder
//! thread opens one while it stands in each namespace, and talks to all of
//! them from wherever it stands after.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use futures_util::TryStreamExt;
use nix::sched::{CloneFlags, unshare};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::address::AddressFlags;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Error, Result};

/// What the kernel says when a process may not make namespaces, in words
/// that say what to do.
pub const NEEDS_ROOT: &str = "building a lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN, to make \
     network namespaces): run netsh as root, e.g. `sudo netsh locate`";

/// Node `i` of a lab with `count` nodes: the client, r1…, the server.
pub fn node_name(i: usize, count: usize) -> String {
    match i {
        0 => "client".into(),
        i if i + 1 == count => "server".into(),
        i => format!("r{i}"),
    }
}

/// Node `i`'s end of link `link` (1-based, link `l` joins nodes `l-1` and
/// `l`): `.1` on the client's side, `.2` on the server's.
pub fn v4(link: usize, side: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 91, link as u8, side)
}

/// [`v4`] over IPv6, on fd91:LINK::/64.
pub fn v6(link: usize, side: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd91, link as u16, 0, 0, 0, 0, 0, u16::from(side))
}

/// Builds a lab of `routers` routers between a client and a server and
/// returns the namespaces, client first. Runs on a thread of its own, so
/// the caller's thread never changes namespace.
pub fn build(routers: usize) -> Result<Vec<OwnedFd>> {
    // Ctrl-C (or stop()) of the caller ends the build; what was made goes
    // with the descriptors.
    let token = crate::runtime::cancel_token();
    std::thread::Builder::new()
        .name("netsh-lab".into())
        .spawn(move || {
            crate::runtime::set_cancel_token(token);
            build_here(routers + 2)
        })
        .map_err(|e| Error::io("starting the lab's builder thread", None, e))?
        .join()
        .map_err(|p| crate::error::thread_failed("the lab's builder thread", &*p))?
}

/// Makes `count` namespaces from this thread (which ends up in the last
/// one and should end soon after) and wires them.
fn build_here(count: usize) -> Result<Vec<OwnedFd>> {
    let rt = crate::runtime::handle();
    // The netlink connections run on the shared runtime while the lab is
    // wired, and end with it (aborted, whatever happened).
    struct Connections(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for Connections {
        fn drop(&mut self) {
            self.0.iter().for_each(tokio::task::JoinHandle::abort);
        }
    }
    let mut connections = Connections(Vec::with_capacity(count));
    let mut fds = Vec::with_capacity(count);
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| match e {
            nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => {
                Error::Permission(NEEDS_ROOT.into())
            }
            e => Error::io("making a network namespace", None, e.into()),
        })?;
        let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("holding a network namespace", None, e))?
            .into();
        fds.push(fd);
        // /proc/sys/net is the namespace of the thread that opens it.
        let router = i != 0 && i + 1 != count;
        let mut settings = vec![("ipv4/icmp_ratelimit", "0"), ("ipv6/icmp/ratelimit", "0")];
        if router {
            settings.extend([("ipv4/ip_forward", "1"), ("ipv6/conf/all/forwarding", "1")]);
        }
        for (key, value) in settings {
            std::fs::write(format!("/proc/sys/net/{key}"), value)
                .map_err(|e| Error::io(format!("setting net.{key}"), None, e))?;
        }
        let _entered = rt.enter();
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::io("opening a netlink socket", None, e))?;
        connections.0.push(rt.spawn(connection));
        handles.push(handle);
    }
    crate::runtime::block_on(wire(&handles, &fds))?;
    drop(connections);
    Ok(fds)
}

fn netlink(what: String) -> impl Fn(rtnetlink::Error) -> Error {
    move |e| {
        let source = match &e {
            rtnetlink::Error::NetlinkError(m) => match m.code {
                Some(code) => std::io::Error::from_raw_os_error(-code.get()),
                None => std::io::Error::other(e.to_string()),
            },
            _ => std::io::Error::other(e.to_string()),
        };
        Error::io(what.clone(), None, source)
    }
}

/// The index of interface `name` in the namespace `handle` talks to.
async fn index(handle: &Handle, name: &str) -> Result<u32> {
    let what = || format!("finding {name} in the lab");
    let link = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(netlink(what()))?;
    link.map(|l| l.header.index)
        .ok_or_else(|| Error::NotFound(what()))
}

async fn up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink(format!("bringing {name} up")))
}

async fn address(handle: &Handle, index: u32, addr: IpAddr, name: &str) -> Result<()> {
    let (prefix, v6) = if addr.is_ipv6() {
        (64, true)
    } else {
        (24, false)
    };
    let mut request = handle.address().add(index, addr, prefix);
    if v6 {
        // Usable at once: duplicate address detection would hold the
        // address back for a second or more.
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request
        .execute()
        .await
        .map_err(netlink(format!("giving {name} the address {addr}")))
}

/// A route to `dest/len` (or the default route, without `dest`) via `gw`.
async fn route(handle: &Handle, dest: Option<usize>, gw: (Ipv4Addr, Ipv6Addr)) -> Result<()> {
    let mut r4 = RouteMessageBuilder::<Ipv4Addr>::new();
    let mut r6 = RouteMessageBuilder::<Ipv6Addr>::new();
    if let Some(link) = dest {
        r4 = r4.destination_prefix(v4(link, 0), 24);
        r6 = r6.destination_prefix(v6(link, 0), 64);
    }
    let what = |gw: &dyn std::fmt::Display| format!("adding a route via {gw}");
    handle
        .route()
        .add(r4.gateway(gw.0).build())
        .execute()
        .await
        .map_err(netlink(what(&gw.0)))?;
    handle
        .route()
        .add(r6.gateway(gw.1).build())
        .execute()
        .await
        .map_err(netlink(what(&gw.1)))
}

/// Joins the namespaces in a line and sets every address and route.
async fn wire(handles: &[Handle], fds: &[OwnedFd]) -> Result<()> {
    let count = handles.len();
    for h in handles {
        let lo = index(h, "lo").await?;
        up(h, lo, "lo").await?;
    }
    for link in 1..count {
        let (a, b) = (link - 1, link);
        let here = format!("to-{}", node_name(b, count));
        let there = format!("to-{}", node_name(a, count));
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(there.clone())
            .setns_by_fd(fds[b].as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(here.clone())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        handles[a]
            .link()
            .add(veth)
            .execute()
            .await
            .map_err(netlink(format!("making the veth pair {here}/{there}")))?;
        for (h, name, side) in [(&handles[a], &here, 1), (&handles[b], &there, 2)] {
            let i = index(h, name).await?;
            address(h, i, v4(link, side).into(), name).await?;
            address(h, i, v6(link, side).into(), name).await?;
            up(h, i, name).await?;
        }
    }
    // The client and the server send everything down the line; router k
    // (on links k and k+1) sends what lies beyond its links onward.
    route(&handles[0], None, (v4(1, 2), v6(1, 2))).await?;
    let last = count - 1;
    route(&handles[last], None, (v4(last, 1), v6(last, 1))).await?;
    for (k, h) in handles.iter().enumerate().take(last).skip(1) {
        for link in 1..count {
            if link < k {
                route(h, Some(link), (v4(k, 1), v6(k, 1))).await?;
            } else if link > k + 1 {
                route(h, Some(link), (v4(k + 1, 2), v6(k + 1, 2))).await?;
            }
        }
    }
    Ok(())
}
