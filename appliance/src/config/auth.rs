//! The `[auth]` and `[tls]` sections: who may watch, and HTTPS.

use serde::{Deserialize, Serialize};

use super::Ranged;

/// `[auth]`: login for the dashboard, the API and WHEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `password` (a login, or an API token) or `none` (anyone on the network).
    pub mode: AuthMode,
    /// A session unused this long ends, seconds.
    pub session_idle_s: Ranged<10, 31_536_000>,
    /// A session ends this long after login, seconds.
    pub session_max_s: Ranged<10, 31_536_000>,
    /// Names the device may be reached by besides IP addresses, `localhost`,
    /// its hostname and `hostname.local` (a DNS name, say).
    pub allowed_hosts: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Password,
            session_idle_s: Ranged::new_const(7 * 24 * 3600),
            session_max_s: Ranged::new_const(30 * 24 * 3600),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Whether a login is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A session (from the password) or an API token.
    #[default]
    Password,
    /// No login: anyone who reaches the port may watch (a lab bench).
    None,
}

/// `[tls]`: HTTPS on the `[live] listen` port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `auto` (on unless the listen address is loopback), `on` or `off`.
    pub mode: TlsMode,
    /// A PEM certificate chain; empty: a self-signed one kept in the state directory.
    pub cert: String,
    /// The PEM private key of `cert`; set both or neither.
    pub key: String,
}

/// Whether the listen port speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// On, unless the listen address is a loopback address (where browsers
    /// treat plain HTTP as a secure context anyway).
    #[default]
    Auto,
    /// Always on.
    On,
    /// Plain HTTP.
    Off,
}

impl TlsConfig {
    /// Whether TLS is on for a server listening on `listen`.
    pub fn enabled(&self, listen: std::net::IpAddr) -> bool {
        match self.mode {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => !listen.is_loopback(),
        }
    }

    /// Checks that `cert` and `key` are given together.
    pub fn check(&self) -> Result<(), String> {
        if self.cert.is_empty() != self.key.is_empty() {
            return Err("tls.cert and tls.key must be set together (or neither, for a self-signed certificate)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn defaults_are_a_password_and_tls_off_loopback_only() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.auth.mode, AuthMode::Password);
        assert_eq!(config.state_dir, "");
        assert!(config.tls.enabled("0.0.0.0".parse().unwrap()));
        assert!(config.tls.enabled("192.168.1.2".parse().unwrap()));
        assert!(!config.tls.enabled("127.0.0.1".parse().unwrap()));
        assert!(!config.tls.enabled("::1".parse().unwrap()));
    }

    #[test]
    fn sections_parse_and_bad_values_name_the_key() {
        let config = Config::from_toml(
            "state_dir = \"/var/lib/mado\"\n[auth]\nmode = \"none\"\nsession_idle_s = 60\nallowed_hosts = [\"cam.example.org\"]\n[tls]\nmode = \"on\"\n",
        )
        .unwrap();
        assert_eq!(config.state_dir, "/var/lib/mado");
        assert_eq!(config.auth.mode, AuthMode::None);
        assert_eq!(config.auth.session_idle_s.get(), 60);
        assert!(config.tls.enabled("127.0.0.1".parse().unwrap()));
        for (text, key, why) in [
            ("[auth]\nmode = \"open\"\n", "mode", "unknown variant"),
            ("[auth]\nsession_idle_s = 1\n", "session_idle_s", "out of range"),
            ("[auth]\npassword = \"x\"\n", "password", "unknown field"),
            ("[tls]\nmode = \"yes\"\n", "mode", "unknown variant"),
            ("[tls]\ncert = \"a.pem\"\n", "tls.cert", "together"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key) && err.contains(why), "error for {text:?} was: {err}");
        }
    }
}
