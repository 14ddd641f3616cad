//! A small rtnetlink client: just the link, address and route requests the pod network needs,
//! over one blocking `NETLINK_ROUTE` socket. A socket stays in the network namespace it was
//! opened in, which the monitor uses to create a veth pair across two namespaces.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::Socket;

/// One rtnetlink socket, in the network namespace that was current when it was opened.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

/// A request the kernel refused: its errno, and what was asked.
#[derive(Debug)]
struct KernelError {
    errno: i32,
    what: String,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for KernelError {}

fn kernel_error(code: i32, what: &str) -> io::Error {
    let errno = -code;
    io::Error::new(
        io::Error::from_raw_os_error(errno).kind(),
        KernelError {
            errno,
            what: what.to_string(),
        },
    )
}

/// The errno of a refused request.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
        .or_else(|| e.get_ref()?.downcast_ref::<KernelError>().map(|k| k.errno))
}

const ENODEV: i32 = 19;

impl Netlink {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        let mut packet = NetlinkMessage::from(message);
        self.sequence = self.sequence.wrapping_add(1);
        packet.header.flags = flags;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.sequence)
    }

    /// Reads answers to request `sequence` until `done` says so; every message of a dump goes
    /// to `each`.
    fn receive(
        &mut self,
        sequence: u32,
        what: &str,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let packet = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..n])
                    .map_err(|e| io::Error::other(format!("{what}: bad netlink answer: {e}")))?;
                let len = packet.header.length as usize;
                if len == 0 {
                    return Err(io::Error::other(format!("{what}: empty netlink message")));
                }
                offset += len;
                if packet.header.sequence_number != sequence {
                    continue;
                }
                match packet.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(()),
                            Some(code) => Err(kernel_error(code.get(), what)),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::InnerMessage(m) => each(m),
                    _ => {}
                }
            }
        }
    }

    /// Sends a change and waits for its acknowledgement.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16, what: &str) -> io::Result<()> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.receive(seq, what, |_| {})
    }

    fn dump(
        &mut self,
        message: RouteNetlinkMessage,
        what: &str,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        self.receive(seq, what, |m| out.push(m))?;
        Ok(out)
    }

    /// The index of link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        let seq = self.send(
            RouteNetlinkMessage::GetLink(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        let mut index = None;
        match self.receive(seq, &format!("looking up link {name}"), |m| {
            if let RouteNetlinkMessage::NewLink(link) = m {
                index = Some(link.header.index);
            }
        }) {
            Ok(()) => Ok(index),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link: (index, name, controller index, is a bridge).
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let answers = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "listing links",
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(&link)),
                _ => None,
            })
            .collect())
    }

    /// Creates bridge `name` unless it exists; returns its index.
    pub fn ensure_bridge(&mut self, name: &str) -> io::Result<u32> {
        if let Some(index) = self.link_index(name)? {
            return Ok(index);
        }
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("creating bridge {name}"),
        ) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        self.link_index(name)?
            .ok_or_else(|| io::Error::other(format!("bridge {name} vanished after creation")))
    }

    /// Creates a veth pair: `name` here, `peer` in the network namespace open as `peer_netns`.
    pub fn create_veth(&mut self, name: &str, peer: &str, peer_netns: RawFd) -> io::Result<u32> {
        let mut peer_message = LinkMessage::default();
        peer_message
            .attributes
            .push(LinkAttribute::IfName(peer.into()));
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns));
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("creating veth pair {name}/{peer}"),
        )?;
        self.link_index(name)?
            .ok_or_else(|| io::Error::other(format!("veth {name} vanished after creation")))
    }

    /// Attaches link `index` to bridge `controller`.
    pub fn set_controller(&mut self, index: u32, controller: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message
            .attributes
            .push(LinkAttribute::Controller(controller));
        self.request(
            RouteNetlinkMessage::SetLink(message),
            0,
            "attaching a veth to the bridge",
        )
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(message),
            0,
            &format!("setting link {index} up"),
        )
    }

    /// Deletes link `name`; Ok(false) when there was none.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let Some(index) = self.link_index(name)? else {
            return Ok(false);
        };
        let mut message = LinkMessage::default();
        message.header.index = index;
        match self.request(
            RouteNetlinkMessage::DelLink(message),
            0,
            &format!("deleting link {name}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `address/prefix_len` to link `index`; an address already there is fine.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(address)));
        message
            .attributes
            .push(AddressAttribute::Address(IpAddr::V4(address)));
        let broadcast = u32::from(address) | (u32::MAX.checked_shr(prefix_len.into()).unwrap_or(0));
        message
            .attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(broadcast)));
        match self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("adding address {address}/{prefix_len}"),
        ) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    /// Every IPv4 address: (link index, address, prefix length).
    pub fn addresses(&mut self) -> io::Result<Vec<(u32, Ipv4Addr, u8)>> {
        let mut query = AddressMessage::default();
        query.header.family = AddressFamily::Inet;
        let answers = self.dump(RouteNetlinkMessage::GetAddress(query), "listing addresses")?;
        let mut out = Vec::new();
        for m in answers {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                let local = a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                });
                let address = a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                });
                if let Some(ip) = local.or(address) {
                    out.push((a.header.index, ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Adds the default route via `gateway` in this namespace.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = 254; // RT_TABLE_MAIN
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        match self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("adding the default route via {gateway}"),
        ) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }
}

/// A network link as a dump lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The bridge it is attached to.
    pub controller: Option<u32>,
    pub kind: Option<String>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Self {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            controller: None,
            kind: None,
        };
        for attr in &m.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Controller(c) => link.controller = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}
