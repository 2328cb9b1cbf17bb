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
use std::net::IpAddr;

/// The entry that admits every origin.
pub const ANY_ORIGIN: &str = "*";

/// One web origin: scheme, host and port, normalised as a browser sends
/// it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// Reads `text` as `http://` or `https://`, a host and an optional
    /// port; nothing else (no path, query, user or fragment). The URL is
    /// read as browsers read it (WHATWG rules: an international name
    /// becomes its `xn--` form, an IP address its shortest form) and
    /// serialised as they serialise its origin.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form = "write scheme://host[:port]";
        let url = url::Url::parse(text)
            .map_err(|err| format!("{text:?} is not an origin ({err}): {form}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?}: an origin's scheme is http or https"));
        }
        let has_more = !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || text.ends_with('/')
            || text.ends_with(':');
        if has_more {
            return Err(format!(
                "{text:?}: an origin has no path, query or user: {form}"
            ));
        }
        if url.port() == Some(0) {
            return Err(format!("{text:?}: 0 is not a port (1-65535)"));
        }
        Ok(Self(url.origin().ascii_serialization()))
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
            normal("https://Bücher.example"),
            "https://xn--bcher-kva.example"
        );
        assert_eq!(normal("http://0x7f.1"), "http://127.0.0.1");
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
            ("https://shop.example#x", "no path"),
            ("https://", "scheme://host"),
            ("https://shop.example:0", "not a port"),
            ("https://shop.example:65536", "scheme://host"),
            ("https://shop.example:+80", "scheme://host"),
            ("https://shop.example:", "no path"),
            ("https://shop example", "scheme://host"),
            ("https://300.1.1.1", "scheme://host"),
            ("https://[::1", "scheme://host"),
            ("https://[nope]", "scheme://host"),
            ("https://[::1]x", "scheme://host"),
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
