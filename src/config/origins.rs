//! Web origins: which pages may open a WebTransport session
//! (`[webtransport] allowed_origins`).
//!
//! A browser names the page that opens a session in the request's
//! `Origin` header, as `scheme://host[:port]` (lowercase, the scheme's
//! default port left out). An entry of the list is written the same way
//! and compared after the same normalising, so `https://Shop.Example:443`
//! in the file admits the page `https://shop.example`.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The entry that admits every origin.
pub const ANY_ORIGIN: &str = "*";

/// One web origin: scheme, host and port, normalised as a browser sends
/// it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// Reads `text` as `http://` or `https://`, a host (a DNS name in
    /// ASCII, an IPv4 address, or an IPv6 address in brackets) and an
    /// optional port; nothing else (no path, query, user or fragment).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an origin: write scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(format!("{text:?}: an origin's scheme is http or https")),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{text:?}: an origin has no path, query or user: write {scheme}://host[:port]"
            ));
        }
        let (host, port) = split_port(rest).map_err(|why| format!("{text:?}: {why}"))?;
        let host = normal_host(host).map_err(|why| format!("{text:?}: {why}"))?;
        Ok(Self(match port {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        }))
    }

    /// The origin of a page served over plain HTTP at `ip`:`port`.
    pub fn http(ip: IpAddr, port: u16) -> Self {
        let host = match ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Self::http_host(&host, port)
    }

    /// The origin `http://localhost:port`.
    pub fn http_localhost(port: u16) -> Self {
        Self::http_host("localhost", port)
    }

    fn http_host(host: &str, port: u16) -> Self {
        if port == 80 {
            Self(format!("http://{host}"))
        } else {
            Self(format!("http://{host}:{port}"))
        }
    }

    /// As a browser writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host and port of `host[:port]`.
fn split_port(rest: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']').ok_or("an IPv6 host is closed by ']'")?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("a port follows ':'")?),
        };
        (&rest[..end + 2], port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(format!("{text:?} is not a port (1-65535)")),
        },
    };
    Ok((host, port))
}

/// The host as a browser serialises it: an IP address in its shortest
/// form, a name in lowercase.
fn normal_host(host: &str) -> Result<String, String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("[{inner}] is not an IPv6 address"))?;
        return Ok(format!("[{ip}]"));
    }
    if host.is_empty() {
        return Err("an origin needs a host".into());
    }
    if !host.is_ascii() {
        return Err("write an international name in its ASCII (xn--) form".into());
    }
    let host = host.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let numeric = labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        let ip: Ipv4Addr = host
            .parse()
            .map_err(|_| format!("{host} is not an IPv4 address"))?;
        return Ok(ip.to_string());
    }
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!("{host} is not a host name"));
    }
    Ok(host)
}

/// The pages that may open WebTransport sessions: listed origins, or
/// every origin (`"*"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    origins: HashSet<Origin>,
}

impl AllowedOrigins {
    /// Reads the entries of `allowed_origins`: origins, or `"*"` for any.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut allowed = Self::default();
        for entry in entries {
            if entry.trim() == ANY_ORIGIN {
                allowed.any = true;
            } else {
                allowed.origins.insert(Origin::parse(entry.trim())?);
            }
        }
        Ok(allowed)
    }

    /// Admits `origin` too.
    pub fn add(&mut self, origin: Origin) {
        self.origins.insert(origin);
    }

    /// Whether a session whose request says `Origin: header` may open.
    ///
    /// A request without the header comes from a program, not a page (a
    /// browser always sends it): it is admitted, since a program could
    /// claim any origin anyway, and it meets the same admission, sign-in
    /// and limits as a native connection. A header that is not an origin
    /// (`null`, from a sandboxed frame or a file) is admitted only by
    /// `"*"`.
    pub fn admits(&self, header: Option<&str>) -> bool {
        let Some(header) = header else {
            return true;
        };
        if self.any {
            return true;
        }
        Origin::parse(header).is_ok_and(|origin| self.origins.contains(&origin))
    }

    /// Whether any browser origin at all is admitted.
    pub fn admits_some(&self) -> bool {
        self.any || !self.origins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(text: &str) -> String {
        Origin::parse(text).unwrap().to_string()
    }

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        assert_eq!(normal("https://Shop.Example"), "https://shop.example");
        assert_eq!(normal("HTTPS://shop.example:443"), "https://shop.example");
        assert_eq!(
            normal("https://shop.example:8443"),
            "https://shop.example:8443"
        );
        assert_eq!(normal("http://shop.example:80"), "http://shop.example");
        assert_eq!(normal("http://shop.example:443"), "http://shop.example:443");
        assert_eq!(normal("http://127.0.0.1:4480"), "http://127.0.0.1:4480");
        assert_eq!(normal("http://[0:0::1]:4480"), "http://[::1]:4480");
        assert_eq!(normal("http://localhost:4480"), "http://localhost:4480");
        assert_eq!(
            Origin::http("::1".parse().unwrap(), 4480).as_str(),
            "http://[::1]:4480"
        );
        assert_eq!(Origin::http_localhost(80).as_str(), "http://localhost");
    }

    #[test]
    fn what_is_not_an_origin_is_refused_with_the_reason() {
        for (text, why) in [
            ("shop.example", "scheme://host"),
            ("ftp://shop.example", "http or https"),
            ("https://shop.example/", "no path"),
            ("https://shop.example/chat", "no path"),
            ("https://user@shop.example", "no path"),
            ("https://shop.example?x", "no path"),
            ("https://", "needs a host"),
            ("https://shop.example:0", "not a port"),
            ("https://shop.example:65536", "not a port"),
            ("https://shop.example:+80", "not a port"),
            ("https://shop.example:", "not a port"),
            ("https://shop..example", "not a host name"),
            ("https://-shop.example", "not a host name"),
            ("https://shop example", "not a host name"),
            ("https://bücher.example", "xn--"),
            ("https://300.1.1.1", "not an IPv4"),
            ("https://[::1", "closed by"),
            ("https://[nope]", "not an IPv6"),
            ("https://[::1]x", "a port follows"),
            ("null", "scheme://host"),
        ] {
            let err = Origin::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn the_list_admits_its_origins_a_star_any_and_a_missing_header() {
        let allowed = AllowedOrigins::parse(&["https://shop.example".into()]).unwrap();
        assert!(allowed.admits(Some("https://shop.example")));
        assert!(allowed.admits(Some("https://SHOP.example:443")));
        assert!(!allowed.admits(Some("https://evil.example")));
        assert!(
            !allowed.admits(Some("http://shop.example")),
            "another scheme"
        );
        assert!(
            !allowed.admits(Some("https://shop.example:8443")),
            "another port"
        );
        assert!(!allowed.admits(Some("https://shop.example.evil.example")));
        assert!(!allowed.admits(Some("null")));
        assert!(allowed.admits(None), "a program sends no Origin");

        let none = AllowedOrigins::default();
        assert!(!none.admits_some());
        assert!(!none.admits(Some("http://localhost:4480")));
        let mut own = none.clone();
        own.add(Origin::http_localhost(4480));
        assert!(own.admits(Some("http://localhost:4480")));

        let any = AllowedOrigins::parse(&["*".into()]).unwrap();
        assert!(any.admits(Some("https://anywhere.example")));
        assert!(any.admits(Some("null")));
        assert!(AllowedOrigins::parse(&["https://a.example/".into()]).is_err());
    }
}
