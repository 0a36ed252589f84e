//! Which `Host` names the device answers to, and which `Origin` may change
//! things: the defence against DNS rebinding and cross-site requests.

use thiserror::Error;

/// Why a request was refused before it reached a handler.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    /// No `Host` header.
    #[error("the request has no Host header")]
    NoHost,
    /// A `Host` that is not a name of this device (DNS rebinding).
    #[error("Host {0:?} is not a name of this device (add it to auth.allowed_hosts)")]
    UnknownHost(String),
    /// A state-changing request from another site's page (CSRF).
    #[error("Origin {0:?} does not match this device's address")]
    CrossOrigin(String),
}

/// The names a request's `Host` may carry besides IP literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    names: Vec<String>,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`)
/// and whether it is an IP literal.
fn host_part(host: &str) -> (&str, bool) {
    if let Some(rest) = host.strip_prefix('[') {
        let inner = rest.split(']').next().unwrap_or("");
        return (inner, inner.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    (name, name.parse::<std::net::Ipv4Addr>().is_ok())
}

impl HostRules {
    /// `localhost`, the machine's `hostname` and `hostname.local` (when it
    /// has one), and the configured `extra` names.
    pub fn new(hostname: Option<&str>, extra: &[String]) -> Self {
        let mut names = vec!["localhost".to_owned()];
        if let Some(h) = hostname.map(normalize).filter(|h| !h.is_empty()) {
            names.push(format!("{h}.local"));
            names.push(h);
        }
        names.extend(extra.iter().map(|n| normalize(n)));
        Self { names }
    }

    /// The names allowed besides IP literals.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Checks a request's `Host` header: an IP literal or a known name.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Refused> {
        let host = host.map(str::trim).filter(|h| !h.is_empty()).ok_or(Refused::NoHost)?;
        let (name, literal) = host_part(host);
        if literal || self.names.contains(&normalize(name)) {
            Ok(())
        } else {
            Err(Refused::UnknownHost(host.to_owned()))
        }
    }

    /// Checks a state-changing request's `Origin` against its (already
    /// checked) `Host`: absent (not a browser) passes; a browser's must be
    /// this very scheme, host and port.
    pub fn check_origin(&self, origin: Option<&str>, host: &str, https: bool) -> Result<(), Refused> {
        let Some(origin) = origin.map(str::trim) else {
            return Ok(());
        };
        let scheme = if https { "https" } else { "http" };
        let expected = format!("{scheme}://{}", host.trim());
        if origin.eq_ignore_ascii_case(&expected) || same_default_port(origin, &expected, https) {
            Ok(())
        } else {
            Err(Refused::CrossOrigin(origin.to_owned()))
        }
    }
}

/// `https://cam` and `https://cam:443` are one origin.
fn same_default_port(origin: &str, expected: &str, https: bool) -> bool {
    let port = if https { ":443" } else { ":80" };
    let strip = |s: &str| s.to_ascii_lowercase().trim_end_matches(port).to_owned();
    strip(origin) == strip(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules::new(Some("Garden-Cam"), &["cam.example.org".into()])
    }

    #[test]
    fn ip_literals_and_own_names_pass_any_other_name_is_refused() {
        let rules = rules();
        for ok in [
            "192.168.1.20",
            "192.168.1.20:8080",
            "[fe80::1]:8080",
            "[::1]",
            "localhost:8080",
            "garden-cam",
            "garden-cam.local:8080",
            "GARDEN-CAM.LOCAL.",
            "cam.example.org",
        ] {
            assert_eq!(rules.check_host(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "attacker.example:8080",
            "192.168.1.20.nip.io",
            "garden-cam.evil",
            "[nonsense]",
        ] {
            assert_eq!(
                rules.check_host(Some(bad)),
                Err(Refused::UnknownHost(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(rules.check_host(None), Err(Refused::NoHost));
        assert_eq!(rules.check_host(Some(" ")), Err(Refused::NoHost));
        let err = rules.check_host(Some("evil.example")).unwrap_err().to_string();
        assert!(err.contains("evil.example") && err.contains("allowed_hosts"), "{err}");
    }

    #[test]
    fn without_a_hostname_only_localhost_and_literals_pass() {
        let rules = HostRules::new(None, &[]);
        assert_eq!(rules.names(), ["localhost"]);
        assert!(rules.check_host(Some("10.0.0.1")).is_ok());
        assert!(rules.check_host(Some("mado")).is_err());
    }

    #[test]
    fn origin_must_be_this_scheme_host_and_port() {
        let rules = rules();
        assert!(
            rules.check_origin(None, "10.0.0.5:8080", true).is_ok(),
            "curl sends none"
        );
        assert!(rules
            .check_origin(Some("https://10.0.0.5:8080"), "10.0.0.5:8080", true)
            .is_ok());
        assert!(rules
            .check_origin(Some("http://10.0.0.5:8080"), "10.0.0.5:8080", false)
            .is_ok());
        assert!(rules
            .check_origin(Some("https://garden-cam"), "garden-cam:443", true)
            .is_ok());
        for bad in [
            "http://10.0.0.5:8080",
            "https://10.0.0.5:8081",
            "https://evil.example",
            "null",
        ] {
            assert_eq!(
                rules.check_origin(Some(bad), "10.0.0.5:8080", true),
                Err(Refused::CrossOrigin(bad.into())),
                "{bad}"
            );
        }
    }
}
