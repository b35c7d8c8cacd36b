//! Outbound network policy: no server-side request forgery. A tenant's `api_url` may not reach loopback,
//! private, link-local or otherwise special addresses unless the operator allows private networks. The URL is
//! checked when a connection is saved, and every connection the HTTP client opens resolves through
//! `GuardedResolver`, so a DNS answer that changes later (rebinding) is caught at connect time too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

/// Why a destination URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("api_url must be an absolute http(s) URL without credentials")]
    Invalid,
    #[error("api_url resolves to a loopback, private or link-local address")]
    NotAllowed,
    #[error("api_url's host does not resolve")]
    Unresolvable,
}

/// True for addresses a tenant may reach: not loopback, private, link-local, shared (CGNAT),
/// unspecified, multicast, broadcast, documentation or IPv6 unique-local.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Parses and checks an account URL: http(s), a host, no user info. With `allow_private == false`
/// every address the host resolves to must be public.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, UrlError> {
    let url = Url::parse(raw.trim()).map_err(|_| UrlError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(UrlError::Invalid);
    }
    if allow_private {
        return Ok(url);
    }
    let host = url.host_str().ok_or(UrlError::Invalid)?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| UrlError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable);
    }
    if addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(UrlError::NotAllowed);
    }
    Ok(url)
}

/// A DNS resolver for reqwest that drops non-public answers (unless private networks are allowed).
#[derive(Clone, Debug)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "destination resolves only to non-public addresses",
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one HTTP client for destinations: rustls, bounded connect time, no redirects (a redirect could
/// point anywhere), and the guarded resolver unless private networks are allowed.
pub fn http_client(allow_private: bool, connect_timeout: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("handoff/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build().expect("a rustls HTTP client builds")
}

/// IP-literal hosts bypass DNS, so calls check them here before sending.
pub fn literal_host_allowed(url: &Url, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_shape_and_address() {
        assert_eq!(
            check_url("ftp://x.example", true).await.unwrap_err(),
            UrlError::Invalid
        );
        assert_eq!(
            check_url("not a url", true).await.unwrap_err(),
            UrlError::Invalid
        );
        assert_eq!(
            check_url("https://u:p@acct.example", true)
                .await
                .unwrap_err(),
            UrlError::Invalid
        );
        assert_eq!(
            check_url("http://127.0.0.1:9100/acct", false)
                .await
                .unwrap_err(),
            UrlError::NotAllowed
        );
        assert_eq!(
            check_url("http://localhost:9100", false).await.unwrap_err(),
            UrlError::NotAllowed
        );
        assert_eq!(
            check_url("http://[::1]:9100", false).await.unwrap_err(),
            UrlError::NotAllowed
        );
        assert!(check_url("http://127.0.0.1:9100/acct", true).await.is_ok());
    }

    #[test]
    fn literal_hosts_are_checked_without_dns() {
        let u = Url::parse("http://10.0.0.1/x").unwrap();
        assert!(!literal_host_allowed(&u, false));
        assert!(literal_host_allowed(&u, true));
        assert!(literal_host_allowed(
            &Url::parse("https://acct.api-us1.com").unwrap(),
            false
        ));
    }
}
