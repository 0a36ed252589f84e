//! The `[publish]` configuration section: WHIP endpoints to push the stream to.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Ranged;

/// `[publish]`: where to push the stream, and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// First wait before publishing again after a failure.
    pub initial_backoff_ms: Ranged<100, 600_000>,
    /// Longest wait between attempts (a server's `Retry-After` may ask for more).
    pub max_backoff_ms: Ranged<100, 3_600_000>,
    /// ICE and DTLS must complete this long after the server's answer.
    pub connect_timeout_ms: Ranged<1_000, 120_000>,
    /// The endpoints, each published to on its own (`[[publish.endpoints]]`).
    pub endpoints: Vec<EndpointConfig>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: Ranged::new_const(1_000),
            max_backoff_ms: Ranged::new_const(60_000),
            connect_timeout_ms: Ranged::new_const(15_000),
            endpoints: Vec::new(),
        }
    }
}

/// One WHIP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Shown in logs and `/api/status`; empty: `endpoint N`.
    #[serde(default)]
    pub name: String,
    /// `false` keeps the entry without publishing to it.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The WHIP endpoint URL (`http` or `https`).
    pub url: String,
    /// Bearer token; prefer `token_file` so the token is not in the config.
    #[serde(default, skip_serializing_if = "Token::is_empty")]
    pub token: Token,
    /// A file holding the bearer token (surrounding white space is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// STUN and TURN servers, besides those the server names in `Link` headers.
    #[serde(default)]
    pub ice_servers: Vec<IceServerConfig>,
}

fn enabled_by_default() -> bool {
    true
}

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:host:port` or `turn:host:port[?transport=udp]`; `turns:` and TCP
    /// are refused when gathering (reported in the status, publishing goes on).
    pub url: String,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Token::is_empty")]
    pub credential: Token,
}

/// A secret in the configuration: read from TOML, but never printed,
/// logged or written back out (`mado print-config` shows `<hidden>`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Token(String);

impl Token {
    /// No token given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "Token(none)" } else { "Token(..)" })
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_empty() { "" } else { "<hidden>" })
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn endpoints_parse_and_tokens_stay_hidden() {
        let config = Config::from_toml(
            "[publish]\ninitial_backoff_ms = 500\n\
             [[publish.endpoints]]\nname = \"cloud\"\nurl = \"https://sfu.example.net/whip/cam\"\ntoken = \"t0ps3cret\"\n\
             ice_servers = [{ url = \"turn:turn.example.net\", username = \"u\", credential = \"pw9\" }]\n\
             [[publish.endpoints]]\nurl = \"http://second.example.net/whip\"\nenabled = false\ntoken_file = \"token.txt\"\n",
        )
        .unwrap();
        let publish = &config.publish;
        assert_eq!(publish.initial_backoff_ms.get(), 500);
        assert_eq!(publish.max_backoff_ms.get(), 60_000);
        assert_eq!(publish.endpoints.len(), 2);
        assert!(publish.endpoints[0].enabled && !publish.endpoints[1].enabled);
        assert_eq!(publish.endpoints[0].token.expose(), "t0ps3cret");
        assert_eq!(publish.endpoints[0].ice_servers[0].credential.expose(), "pw9");
        let printed = format!("{config:?}{}", toml::to_string(&config).unwrap());
        assert!(!printed.contains("t0ps3cret") && !printed.contains("pw9"), "{printed}");
        assert!(printed.contains("<hidden>"));
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[publish]\nmax_backoff_ms = 5\n", "max_backoff_ms"),
            ("[[publish.endpoints]]\nname = \"x\"\n", "url"),
            ("[[publish.endpoints]]\nurl = \"http://h/\"\ntokn = \"x\"\n", "tokn"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key), "error for {text:?} was: {err}");
        }
    }
}
