//! The HTTP exchanges of a WHIP publisher (RFC 9725), as plain values: the
//! publisher asks for requests, the shell makes them and hands the answers
//! back. Nothing here touches the network.

use std::fmt;
use std::time::Duration;

use http::Uri;

/// A bearer token. Its `Debug` and `Display` never show the secret, so it
/// cannot end up in a log line or a status page by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Identifies a request so its answer can be matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The HTTP methods WHIP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Sends the offer.
    Post,
    /// Ends the session.
    Delete,
}

/// A request for the shell to make. Redirects are the publisher's business:
/// the shell must not follow them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Matches the answer to the request.
    pub id: RequestId,
    /// POST or DELETE.
    pub method: Method,
    /// An absolute `http` or `https` URL.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer: Option<Secret>,
    /// The SDP offer of a POST (`Content-Type: application/sdp`).
    pub body: Option<String>,
}

/// The part of an HTTP response the publisher reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers in arrival order, names in any case.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (ignoring case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name` (ignoring case).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How long `Retry-After` asks the client to wait: delay-seconds, or an
    /// HTTP date taken relative to the response's own `Date` (so no local
    /// clock is read; a date without a `Date` header is ignored).
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        let sent = httpdate::parse_http_date(self.header("date")?.trim()).ok()?;
        Some(at.duration_since(sent).unwrap_or(Duration::ZERO))
    }
}

/// Why a request got no HTTP answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// The host name did not resolve.
    Dns(String),
    /// No connection: refused, no route, TLS failure.
    Unreachable(String),
    /// No answer in time.
    Timeout,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(why) => write!(f, "DNS failure: {why}"),
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
            Self::Timeout => f.write_str("no HTTP answer in time"),
        }
    }
}

/// An ICE server the WHIP server offered in a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// A `stun:`, `turn:` or `turns:` URL.
    pub url: String,
    /// For TURN.
    pub username: Option<String>,
    /// For TURN; never shown.
    pub credential: Option<Secret>,
}

/// The `rel="ice-server"` entries of `Link` headers (RFC 9725 section 4.4).
pub fn ice_servers(response: &HttpResponse) -> Vec<IceServer> {
    let mut servers = Vec::new();
    for header in response.headers_named("link") {
        for link in split_links(header) {
            let mut parts = link.split(';').map(str::trim);
            let Some(target) = parts.next().and_then(|t| t.strip_prefix('<')?.strip_suffix('>')) else {
                continue;
            };
            let mut server = IceServer {
                url: target.to_owned(),
                username: None,
                credential: None,
            };
            let mut is_ice = false;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "rel" => is_ice = value.split_whitespace().any(|r| r.eq_ignore_ascii_case("ice-server")),
                    "username" => server.username = Some(value.to_owned()),
                    "credential" => server.credential = Some(Secret::new(value)),
                    _ => {}
                }
            }
            if is_ice {
                servers.push(server);
            }
        }
    }
    servers
}

/// Splits a `Link` header's comma-separated links, leaving commas inside
/// `<...>` and quotes alone.
fn split_links(header: &str) -> Vec<&str> {
    let (mut links, mut start, mut in_angle, mut in_quote) = (Vec::new(), 0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                links.push(header[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    links.push(header[start..].trim());
    links.retain(|l| !l.is_empty());
    links
}

/// Why an endpoint URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

/// Checks that `url` is an absolute `http` or `https` URL with a host.
pub fn check_url(url: &str) -> Result<Uri, BadUrl> {
    let uri: Uri = url.parse().map_err(|e| BadUrl(format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(BadUrl(format!("{url:?} is not an http or https URL"))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(BadUrl(format!("{url:?} has no host")));
    }
    Ok(uri)
}

/// Resolves a `Location` header against the URL of the request it answered
/// (absolute, absolute-path or relative-path references).
pub fn resolve(base: &str, location: &str) -> Result<String, BadUrl> {
    let location = location.trim();
    if location.contains("://") {
        check_url(location)?;
        return Ok(location.to_owned());
    }
    let base_uri = check_url(base)?;
    let origin = format!(
        "{}://{}",
        base_uri.scheme_str().unwrap_or("http"),
        base_uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let resolved = if let Some(rest) = location.strip_prefix("//") {
        format!("{}://{rest}", base_uri.scheme_str().unwrap_or("http"))
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = base_uri.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{origin}{dir}{location}")
    };
    check_url(&resolved)?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse {
            status: 201,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: String::new(),
        }
    }

    #[test]
    fn link_headers_give_ice_servers() {
        let r = response(&[
            ("Link", "<stun:stun.example.net>; rel=\"ice-server\""),
            (
                "link",
                "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"u1\"; credential=\"p,1\"; \
                 credential-type=\"password\", <https://example.net/x>; rel=\"next\"",
            ),
        ]);
        let servers = ice_servers(&r);
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(servers[0].url, "stun:stun.example.net");
        assert_eq!(servers[1].url, "turn:turn.example.net?transport=udp");
        assert_eq!(servers[1].username.as_deref(), Some("u1"));
        assert_eq!(servers[1].credential.as_ref().map(Secret::expose), Some("p,1"));
        assert!(!format!("{servers:?}").contains("p,1"), "credentials are never printed");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(
            response(&[("Retry-After", "7")]).retry_after(),
            Some(Duration::from_secs(7))
        );
        let dated = response(&[
            ("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT"),
            ("Date", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]);
        assert_eq!(dated.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(response(&[("Retry-After", "soon")]).retry_after(), None);
        assert_eq!(response(&[]).retry_after(), None);
    }

    #[test]
    fn urls_are_checked_and_locations_resolved() {
        assert!(check_url("http://h:8080/whip/x").is_ok());
        for bad in ["", "whip.example.net/x", "ftp://h/x", "http://", "http://exa mple/"] {
            assert!(check_url(bad).is_err(), "{bad:?} was accepted");
        }
        let base = "https://sfu.example.net:8443/whip/endpoint/cam";
        assert_eq!(
            resolve(base, "/whip/resource/1").unwrap(),
            "https://sfu.example.net:8443/whip/resource/1"
        );
        assert_eq!(
            resolve(base, "res/1").unwrap(),
            "https://sfu.example.net:8443/whip/endpoint/res/1"
        );
        assert_eq!(resolve(base, "http://other:1/r").unwrap(), "http://other:1/r");
        assert_eq!(resolve(base, "//other/r").unwrap(), "https://other/r");
    }

    #[test]
    fn secrets_are_never_printed() {
        let request = HttpRequest {
            id: RequestId(1),
            method: Method::Post,
            url: "http://h/".into(),
            bearer: Some(Secret::new("hunter2")),
            body: None,
        };
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
