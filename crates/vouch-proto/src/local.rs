//! Who this server is: the domains it is responsible for (RFC 3261 §16.4, §16.5, §10.3 step
//! 1), the addresses it listens on, and the values it writes about itself — the sent-by of its
//! Via (§16.6 step 8, §18.1.1) and its Record-Route URI (§16.6 step 4).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use vouch_msg::Host;
use vouch_msg::SipUri;
use vouch_msg::headers::Via;

use crate::endpoint::TransportKind;

/// The server's own names and addresses.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    domains: Vec<String>,
    sockets: Vec<(TransportKind, SocketAddr)>,
    advertised: Option<String>,
    /// Static next hops for host names ([`crate::EndpointConfig::static_hosts`]).
    hosts: Vec<(String, SocketAddr)>,
}

/// Parses the host of a URI or Via as an IP address; `localhost` is the IPv4 loopback.
pub(crate) fn host_ip(host: Host<'_>) -> Option<IpAddr> {
    match host {
        Host::V4(a) => Some(IpAddr::V4(a)),
        Host::V6(a) => a.parse().ok().map(IpAddr::V6),
        Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Host::Domain(_) => None,
    }
}

/// An IP as written in a URI host (IPv6 in brackets, RFC 5118).
pub(crate) fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl Local {
    pub(crate) fn new(
        domains: &[String],
        sockets: &[(TransportKind, SocketAddr)],
        advertised: Option<&str>,
    ) -> Self {
        Local {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            sockets: sockets.to_vec(),
            advertised: advertised.map(|a| a.to_ascii_lowercase()),
            hosts: Vec::new(),
        }
    }

    /// The same, with a static host table for next hops.
    pub(crate) fn with_hosts(mut self, hosts: Vec<(String, SocketAddr)>) -> Self {
        self.hosts = hosts;
        self
    }

    /// The static host table: names resolved without DNS.
    pub(crate) fn hosts(&self) -> &[(String, SocketAddr)] {
        &self.hosts
    }

    /// The configured domains, lowercased.
    pub(crate) fn domains(&self) -> &[String] {
        &self.domains
    }

    /// True when `host` is one of our domains.
    pub(crate) fn is_domain(&self, host: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
    }

    /// True when `host:port` (port defaulted per transport) is one of our listen addresses
    /// or the advertised host with one of our ports.
    pub(crate) fn is_address(&self, host: Host<'_>, host_str: &str, port: Option<u16>) -> bool {
        let port_ok = |p: u16| self.sockets.iter().any(|(_, a)| a.port() == p);
        let port_ok = match port {
            Some(p) => port_ok(p),
            None => port_ok(5060) || port_ok(5061),
        };
        if !port_ok {
            return false;
        }
        if self
            .advertised
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(host_str.trim_matches(['[', ']'])))
        {
            return true;
        }
        let Some(ip) = host_ip(host) else {
            return false;
        };
        self.sockets
            .iter()
            .any(|(_, a)| a.ip() == ip || (a.ip().is_unspecified() && ip.is_loopback()))
    }

    /// True when the URI names this server: one of our domains, or one of our addresses.
    pub(crate) fn is_ours(&self, uri: &SipUri<'_>) -> bool {
        self.is_domain(uri.host_str()) || self.is_address(uri.host(), uri.host_str(), uri.port())
    }

    /// True when the URI is one of our addresses (not merely a domain we serve).
    pub(crate) fn is_our_address(&self, uri: &SipUri<'_>) -> bool {
        self.is_address(uri.host(), uri.host_str(), uri.port())
    }

    /// True when a Via sent-by is one of our addresses (§16.3 step 4, §18.1.2).
    pub(crate) fn is_our_via(&self, via: &Via<'_>) -> bool {
        self.is_address(via.host(), via.host_str(), via.port())
    }

    /// The listen address used to send over `transport`: the first of that transport, else the
    /// first of any.
    pub(crate) fn socket_for(&self, transport: TransportKind) -> (TransportKind, SocketAddr) {
        self.sockets
            .iter()
            .find(|(t, _)| *t == transport)
            .or_else(|| self.sockets.first())
            .copied()
            .unwrap_or((
                TransportKind::Udp,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            ))
    }

    /// The host we write about ourselves: the advertised host, else the listen IP.
    pub(crate) fn host_for(&self, addr: SocketAddr) -> String {
        match &self.advertised {
            Some(a) => a.clone(),
            None => ip_host(addr.ip()),
        }
    }

    /// `host:port` for the Via we add when sending over `transport` (§18.1.1).
    pub(crate) fn sent_by(&self, transport: TransportKind) -> String {
        let (_, addr) = self.socket_for(transport);
        format!("{}:{}", self.host_for(addr), addr.port())
    }

    /// Our Record-Route value for requests received over `transport` (§16.6 step 4): the
    /// receiving socket, loose routing. TLS gets a `sips:` URI.
    pub(crate) fn record_route(&self, transport: TransportKind) -> String {
        let (t, addr) = self.socket_for(transport);
        let scheme = if t == TransportKind::Tls {
            "sips"
        } else {
            "sip"
        };
        format!(
            "<{scheme}:{}:{};transport={};lr>",
            self.host_for(addr),
            addr.port(),
            t.as_param()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vouch_msg::Uri;

    fn local() -> Local {
        Local::new(
            &["Example.com".to_owned()],
            &[
                (TransportKind::Udp, "10.0.0.1:5060".parse().unwrap()),
                (TransportKind::Tcp, "10.0.0.1:5060".parse().unwrap()),
            ],
            None,
        )
    }

    fn ours(l: &Local, u: &str) -> bool {
        let uri = Uri::parse(u).unwrap();
        l.is_ours(uri.as_sip().unwrap())
    }

    #[test]
    fn recognises_domains_and_addresses() {
        let l = local();
        assert!(ours(&l, "sip:bob@EXAMPLE.com"));
        assert!(ours(&l, "sip:10.0.0.1"));
        assert!(ours(&l, "sip:10.0.0.1:5060;lr"));
        assert!(!ours(&l, "sip:10.0.0.1:5070"));
        assert!(!ours(&l, "sip:10.0.0.2"));
        assert!(!ours(&l, "sip:bob@example.org"));
    }

    #[test]
    fn record_route_names_receiving_socket() {
        let l = local();
        assert_eq!(
            l.record_route(TransportKind::Tcp),
            "<sip:10.0.0.1:5060;transport=tcp;lr>"
        );
        assert_eq!(l.sent_by(TransportKind::Udp), "10.0.0.1:5060");
    }
}
