//! RFC 3263 §4 server location for the proxy's next hops: the driver's answer to the engine's
//! `Event::Resolve`, with hickory-resolver (its cache honours the records' TTLs; its timeout
//! and retries bound every query).
//!
//! - Transport (§4.1): the URI's `transport` parameter; else, with an explicit port, UDP (TLS
//!   for `sips:`); else the host's NAPTR records (unless `[dns] naptr = false`) for SIP+D2U,
//!   SIP+D2T and SIPS+D2T (only SIPS+D2T for `sips:`), by order then preference; else the
//!   first of `_sip._udp`, `_sip._tcp`, `_sips._tcp` (only `_sips._tcp` for `sips:`) that has
//!   SRV records; else UDP (TLS for `sips:`).
//! - Port and address (§4.2): with an explicit port, the host's A/AAAA records; else the SRV
//!   records of the transport's service, by priority and, within a priority, RFC 2782's
//!   weighted random draw, each target's addresses in turn; with no SRV records, the host's
//!   A/AAAA records at the transport's default port.
//! - NAPTR records of several transports are followed in their order and their addresses
//!   concatenated, so that when every server of the preferred transport fails the engine
//!   fails over to the next transport's (§4.3 leaves what comes after the first list open).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tracing::debug;

use crate::config::DnsConfig;
use crate::engine::{Peer, TransportKind};

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct DnsSetupError(String);

/// Locates SIP servers by RFC 3263 §4. Cheap to clone (the resolver and its cache are shared).
#[derive(Clone, Debug)]
pub struct Locator {
    resolver: TokioResolver,
    naptr: bool,
}

/// What one query found.
enum Found<T> {
    Records(Vec<T>),
    /// The name does not exist or has no records of the type: look further (§4.1, §4.2).
    Nothing,
}

impl Locator {
    /// A locator asking `config.nameservers` (the system's when empty).
    pub fn new(config: &DnsConfig) -> Result<Self, DnsSetupError> {
        let setup = |e: NetError| DnsSetupError(e.to_string());
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(setup)?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_millis(config.timeout_ms);
        // SIP names are absolute (RFC 3263 §4: the host part is a domain name): no search list.
        opts.ndots = 0;
        Ok(Locator {
            resolver: builder.build().map_err(setup)?,
            naptr: config.naptr,
        })
    }

    /// The addresses to try for a URI with this host, port, `transport` parameter and
    /// scheme, best first; `Err` says why there are none.
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<TransportKind>,
        secure: bool,
    ) -> Result<Vec<Peer>, String> {
        let name = absolute(host)?;
        let fallback = if secure {
            TransportKind::Tls
        } else {
            TransportKind::Udp
        };
        if let Some(port) = port {
            // §4.2: an explicit port means A/AAAA only.
            let t = transport.unwrap_or(fallback);
            return self.addresses(&name, t, port).await;
        }
        let services: Vec<(TransportKind, Name)> = match transport {
            Some(t) => vec![(t, service_name(t, &name)?)],
            None => self.services(&name, secure).await?,
        };
        let mut peers = Vec::new();
        for (t, service) in &services {
            peers.extend(self.srv_targets(service, *t).await?);
        }
        if !peers.is_empty() {
            return Ok(peers);
        }
        // §4.2: no SRV records: the host itself at the default port of the transport.
        let t = match transport {
            Some(t) => t,
            None => services.first().map_or(fallback, |(t, _)| *t),
        };
        self.addresses(&name, t, t.default_port()).await
    }

    /// §4.1: the SRV names to query, with their transports, in order — from NAPTR, else the
    /// first transport whose SRV name has records.
    async fn services(
        &self,
        name: &Name,
        secure: bool,
    ) -> Result<Vec<(TransportKind, Name)>, String> {
        if self.naptr
            && let Found::Records(records) = self.query(name, RecordType::NAPTR).await?
        {
            let mut rules: Vec<(u16, u16, TransportKind, Name)> = records
                .into_iter()
                .filter_map(|r| match r {
                    RData::NAPTR(n) if n.flags.eq_ignore_ascii_case(b"s") => {
                        let t = naptr_transport(&n.services, secure)?;
                        Some((n.order, n.preference, t, n.replacement))
                    }
                    _ => None,
                })
                .collect();
            rules.sort_by_key(|&(order, pref, ..)| (order, pref));
            if !rules.is_empty() {
                return Ok(rules.into_iter().map(|(_, _, t, n)| (t, n)).collect());
            }
        }
        let preference: &[TransportKind] = if secure {
            &[TransportKind::Tls]
        } else {
            &[TransportKind::Udp, TransportKind::Tcp, TransportKind::Tls]
        };
        for &t in preference {
            let service = service_name(t, name)?;
            if let Found::Records(_) = self.query(&service, RecordType::SRV).await? {
                return Ok(vec![(t, service)]);
            }
        }
        Ok(Vec::new())
    }

    /// §4.2, RFC 2782: the addresses of the targets of `service`'s SRV records, in order.
    async fn srv_targets(&self, service: &Name, t: TransportKind) -> Result<Vec<Peer>, String> {
        let Found::Records(records) = self.query(service, RecordType::SRV).await? else {
            return Ok(Vec::new());
        };
        let srv: Vec<(u16, u16, (Name, u16))> = records
            .into_iter()
            .filter_map(|r| match r {
                // A target of "." means the service is decidedly not available there.
                RData::SRV(s) if !s.target.is_root() => {
                    Some((s.priority, s.weight, (s.target, s.port)))
                }
                _ => None,
            })
            .collect();
        let mut peers = Vec::new();
        for (target, port) in order_srv(srv, random_up_to) {
            match self.addresses(&target, t, port).await {
                Ok(found) => peers.extend(found),
                // One target that does not resolve leaves the others.
                Err(e) => debug!(%target, error = %e, "SRV target not resolved"),
            }
        }
        Ok(peers)
    }

    /// The A/AAAA addresses of `name`, each with `t` and `port`.
    async fn addresses(
        &self,
        name: &Name,
        t: TransportKind,
        port: u16,
    ) -> Result<Vec<Peer>, String> {
        let found = self
            .resolver
            .lookup_ip(name.clone())
            .await
            .map_err(|e| describe(name, &e))?;
        Ok(found
            .iter()
            .map(|ip: IpAddr| Peer::new(t, SocketAddr::new(ip, port)))
            .collect())
    }

    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Found<RData>, String> {
        match self.resolver.lookup(name.clone(), rtype).await {
            Ok(l) => {
                let records: Vec<RData> = l
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                Ok(if records.is_empty() {
                    Found::Nothing
                } else {
                    Found::Records(records)
                })
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Found::Nothing),
            Err(e) => Err(describe(name, &e)),
        }
    }
}

/// `host` as an absolute name (a trailing dot: no search list).
fn absolute(host: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(host).map_err(|e| format!("not a domain name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The SRV owner name of a transport's SIP service under `name` (RFC 3263 §4.1).
fn service_name(t: TransportKind, name: &Name) -> Result<Name, String> {
    let label = match t {
        TransportKind::Udp => "_sip._udp",
        TransportKind::Tcp => "_sip._tcp",
        TransportKind::Tls => "_sips._tcp",
    };
    Name::from_ascii(label)
        .and_then(|l| l.append_domain(name))
        .map_err(|e| format!("no SRV name under {name}: {e}"))
}

/// The transport of a NAPTR service field we can use (RFC 3263 §4.1; only SIPS+D2T for a
/// `sips:` URI).
fn naptr_transport(services: &[u8], secure: bool) -> Option<TransportKind> {
    let is = |s: &str| services.eq_ignore_ascii_case(s.as_bytes());
    if is("SIPS+D2T") {
        Some(TransportKind::Tls)
    } else if secure {
        None
    } else if is("SIP+D2U") {
        Some(TransportKind::Udp)
    } else if is("SIP+D2T") {
        Some(TransportKind::Tcp)
    } else {
        None
    }
}

/// Why a lookup of `name` failed, for the Warning the engine sends.
fn describe(name: &Name, e: &NetError) -> String {
    if e.is_nx_domain() {
        format!("{name} does not exist (NXDOMAIN)")
    } else if e.is_no_records_found() {
        format!("{name} has no address records")
    } else {
        format!("DNS lookup of {name} failed: {e}")
    }
}

/// A uniform draw from `0..=n`. Not cryptographic: RFC 2782's weighting only spreads load.
fn random_up_to(n: u32) -> u32 {
    let r = RandomState::new().hash_one(n);
    // Lossless: the remainder is at most `n`.
    u32::try_from(r % (u64::from(n) + 1)).unwrap_or(0)
}

/// RFC 2782's order of SRV records `(priority, weight, item)`: lowest priority first; within
/// a priority, repeatedly the record whose running weight sum first reaches a number drawn
/// from `0..=sum` (`draw(sum)`), zero weights placed first so they are chosen only when the
/// draw is 0.
fn order_srv<T>(mut records: Vec<(u16, u16, T)>, mut draw: impl FnMut(u32) -> u32) -> Vec<T> {
    records.sort_by_key(|r| (r.0, r.1 != 0));
    let mut out = Vec::with_capacity(records.len());
    while let Some(&(priority, ..)) = records.first() {
        let end = records
            .iter()
            .position(|r| r.0 != priority)
            .unwrap_or(records.len());
        let mut group: Vec<(u16, u16, T)> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let pick = draw(total);
            let mut sum = 0;
            let i = group
                .iter()
                .position(|r| {
                    sum += u32::from(r.1);
                    sum >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(i).2);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_records_go_by_priority_then_weighted_draw() {
        let records = vec![
            (20, 0, "backup"),
            (10, 10, "a"),
            (10, 90, "b"),
            (10, 0, "z"),
        ];
        // Draw 0 takes the zero-weight record, then the running sums of a (10) and b (100).
        let mut draws = vec![0, 50, 0].into_iter();
        let order = order_srv(records.clone(), |_| draws.next().unwrap_or(0));
        assert_eq!(order, vec!["z", "b", "a", "backup"]);
        let mut draws = vec![5, 7, 0].into_iter();
        let order = order_srv(records, |_| draws.next().unwrap_or(0));
        assert_eq!(order, vec!["a", "b", "z", "backup"]);
    }

    #[test]
    fn weights_spread_the_first_choice() {
        let mut first_b = 0;
        for _ in 0..1000 {
            let order = order_srv(vec![(1, 1, "a"), (1, 3, "b")], random_up_to);
            if order[0] == "b" {
                first_b += 1;
            }
        }
        // RFC 2782 draws from 0..=4: "a" (running sum 1) takes 0 and 1, "b" the other three.
        assert!((520..680).contains(&first_b), "{first_b}");
    }

    #[test]
    fn naptr_services_map_to_transports() {
        assert_eq!(naptr_transport(b"SIP+D2U", false), Some(TransportKind::Udp));
        assert_eq!(naptr_transport(b"sip+d2t", false), Some(TransportKind::Tcp));
        assert_eq!(naptr_transport(b"SIPS+D2T", true), Some(TransportKind::Tls));
        assert_eq!(naptr_transport(b"SIP+D2U", true), None);
        assert_eq!(naptr_transport(b"E2U+sip", false), None);
    }

    #[test]
    fn service_names_are_under_the_host() {
        let name = absolute("biloxi.example").unwrap();
        assert_eq!(
            service_name(TransportKind::Tls, &name).unwrap().to_string(),
            "_sips._tcp.biloxi.example."
        );
    }
}
