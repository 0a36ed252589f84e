//! The `[mqtt]` configuration section: the broker Home Assistant listens on,
//! and the topics Mado publishes to.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::publish::Token;
use super::Ranged;

/// The longest topic prefix, in bytes: the longest topic built on it stays
/// far below MQTT's 65535-byte limit and brokers' usual caps.
pub const MAX_PREFIX_BYTES: usize = 200;
/// The longest client id, in bytes (MQTT 3.1.1 promises 23; Mosquitto takes more).
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// `[mqtt]`: where to publish events, counts and availability, and whether
/// Home Assistant should find the camera by MQTT discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Publish to a broker at all.
    pub enabled: bool,
    /// The broker's host name or address.
    pub host: String,
    /// The broker's TCP port (plain MQTT 3.1.1).
    pub port: Ranged<1, 65535>,
    /// User name; empty: none.
    pub username: String,
    /// Password; prefer `password_file` so it is not in the config.
    #[serde(skip_serializing_if = "Token::is_empty")]
    pub password: Token,
    /// A file holding the password (surrounding white space is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The MQTT client id; not given: `mado-<hostname>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// Every topic Mado publishes starts with this; not given: `mado/<hostname>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<TopicPrefix>,
    /// Publish Home Assistant discovery configs.
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: TopicPrefix,
    /// Seconds between keep-alive pings; the broker sends the last will after 1.5 times this without word.
    pub keep_alive_s: Ranged<5, 3600>,
    /// First wait before connecting again after the broker was lost.
    pub initial_backoff_ms: Ranged<100, 600_000>,
    /// Longest wait between connection attempts.
    pub max_backoff_ms: Ranged<100, 3_600_000>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost".into(),
            port: Ranged::new_const(1883),
            username: String::new(),
            password: Token::default(),
            password_file: None,
            client_id: None,
            topic_prefix: None,
            discovery: true,
            discovery_prefix: TopicPrefix("homeassistant".into()),
            keep_alive_s: Ranged::new_const(30),
            initial_backoff_ms: Ranged::new_const(1_000),
            max_backoff_ms: Ranged::new_const(30_000),
        }
    }
}

/// A checked topic prefix: one or more levels, no wildcards (`+`, `#`), no
/// empty level (no leading, trailing or doubled `/`), not starting with `$`
/// (the broker's own topics), no NUL, at most [`MAX_PREFIX_BYTES`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicPrefix(String);

impl TopicPrefix {
    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TopicPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Why `topic` cannot be a topic (or prefix) Mado publishes to.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("a topic prefix cannot be empty".into());
    }
    if topic.len() > MAX_PREFIX_BYTES {
        return Err(format!(
            "topic prefix {topic:?} is {} bytes long: at most {MAX_PREFIX_BYTES}",
            topic.len()
        ));
    }
    if topic.contains(['+', '#']) {
        return Err(format!("topic prefix {topic:?} has a wildcard (+ or #)"));
    }
    if topic.contains('\0') {
        return Err(format!("topic prefix {topic:?} has a NUL character"));
    }
    if topic.split('/').any(str::is_empty) {
        return Err(format!(
            "topic prefix {topic:?} has an empty level (a leading, trailing or doubled /)"
        ));
    }
    if topic.starts_with('$') {
        return Err(format!("topic prefix {topic:?} starts with $, kept for the broker"));
    }
    Ok(())
}

impl TryFrom<String> for TopicPrefix {
    type Error = String;
    fn try_from(topic: String) -> Result<Self, String> {
        check_topic(&topic)?;
        Ok(Self(topic))
    }
}

impl From<TopicPrefix> for String {
    fn from(topic: TopicPrefix) -> String {
        topic.0
    }
}

/// A checked MQTT client id: 1 to [`MAX_CLIENT_ID_BYTES`] bytes of ASCII
/// letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = String;
    fn try_from(id: String) -> Result<Self, String> {
        if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES {
            return Err(format!("client id {id:?} must be 1 to {MAX_CLIENT_ID_BYTES} bytes"));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(format!(
                "client id {id:?} may only hold ASCII letters, digits, -, _ and ."
            ));
        }
        Ok(Self(id))
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

/// `name` made safe for one topic level and Home Assistant's ids: lower case
/// ASCII letters, digits, `_` and `-`; anything else becomes `_`. Never empty.
pub fn topic_level(name: &str) -> String {
    let level: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    if level.is_empty() {
        "_".into()
    } else {
        level
    }
}

impl MqttConfig {
    /// The client id in effect on a machine called `hostname`.
    pub fn client_id_for(&self, hostname: &str) -> String {
        self.client_id.as_ref().map_or_else(
            || format!("mado-{}", topic_level(hostname)),
            |id| id.as_str().to_owned(),
        )
    }

    /// The topic prefix in effect on a machine called `hostname`.
    pub fn topic_prefix_for(&self, hostname: &str) -> String {
        self.topic_prefix
            .as_ref()
            .map_or_else(|| format!("mado/{}", topic_level(hostname)), |p| p.as_str().to_owned())
    }

    /// Whether the settings fit together (a password from one place only,
    /// backoffs in order); the message names the keys.
    pub fn check(&self) -> Result<(), String> {
        if !self.password.is_empty() && self.password_file.is_some() {
            return Err("mqtt: give password or password_file, not both".into());
        }
        if self.initial_backoff_ms.get() > self.max_backoff_ms.get() {
            return Err("mqtt: initial_backoff_ms is above max_backoff_ms".into());
        }
        if self.enabled && self.host.trim().is_empty() {
            return Err("mqtt: host is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_are_off_with_hostname_derived_names() {
        let config = Config::from_toml("").unwrap();
        let mqtt = &config.mqtt;
        assert!(!mqtt.enabled && mqtt.discovery);
        assert_eq!(mqtt.port.get(), 1883);
        assert_eq!(mqtt.discovery_prefix.as_str(), "homeassistant");
        assert_eq!(mqtt.client_id_for("Front Door"), "mado-front_door");
        assert_eq!(mqtt.topic_prefix_for("Front Door"), "mado/front_door");
    }

    #[test]
    fn a_full_section_parses_and_the_password_stays_hidden() {
        let config = Config::from_toml(
            "[mqtt]\nenabled = true\nhost = \"broker.lan\"\nport = 8883\nusername = \"cam\"\n\
             password = \"s3cr3tpw\"\nclient_id = \"porch-cam\"\ntopic_prefix = \"home/porch\"\n\
             discovery = false\ndiscovery_prefix = \"ha\"\nkeep_alive_s = 10\n",
        )
        .unwrap();
        let mqtt = &config.mqtt;
        assert!(mqtt.enabled && !mqtt.discovery);
        assert_eq!(mqtt.client_id_for("x"), "porch-cam");
        assert_eq!(mqtt.topic_prefix_for("x"), "home/porch");
        assert_eq!(mqtt.password.expose(), "s3cr3tpw");
        let printed = format!("{config:?}{}", toml::to_string(&config).unwrap());
        assert!(!printed.contains("s3cr3tpw"), "{printed}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key, why) in [
            ("[mqtt]\ntopic_prefix = \"mado/#\"\n", "topic_prefix", "wildcard"),
            ("[mqtt]\ntopic_prefix = \"a/+/b\"\n", "topic_prefix", "wildcard"),
            ("[mqtt]\ntopic_prefix = \"mado//cam\"\n", "topic_prefix", "empty level"),
            ("[mqtt]\ntopic_prefix = \"/mado\"\n", "topic_prefix", "empty level"),
            ("[mqtt]\ntopic_prefix = \"mado/\"\n", "topic_prefix", "empty level"),
            ("[mqtt]\ntopic_prefix = \"\"\n", "topic_prefix", "cannot be empty"),
            ("[mqtt]\ntopic_prefix = \"$SYS/x\"\n", "topic_prefix", "starts with $"),
            ("[mqtt]\ndiscovery_prefix = \"home#\"\n", "discovery_prefix", "wildcard"),
            ("[mqtt]\nclient_id = \"a b\"\n", "client_id", "may only hold"),
            ("[mqtt]\nclient_id = \"\"\n", "client_id", "1 to 64 bytes"),
            ("[mqtt]\nport = 0\n", "port", "out of range"),
            ("[mqtt]\nkeep_alive_s = 1\n", "keep_alive_s", "out of range"),
            ("[mqtt]\nbroker = \"x\"\n", "broker", "unknown field"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key) && err.contains(why), "error for {text:?} was: {err}");
        }
        let long = format!("[mqtt]\ntopic_prefix = \"{}\"\n", "a".repeat(MAX_PREFIX_BYTES + 1));
        let err = Config::from_toml(&long).unwrap_err();
        assert!(err.contains("topic_prefix") && err.contains("bytes long"), "{err}");
    }

    #[test]
    fn settings_that_do_not_fit_together_are_named() {
        for (text, key) in [
            (
                "[mqtt]\npassword = \"x\"\npassword_file = \"/run/pw\"\n",
                "password_file",
            ),
            (
                "[mqtt]\ninitial_backoff_ms = 5000\nmax_backoff_ms = 1000\n",
                "initial_backoff_ms",
            ),
            ("[mqtt]\nenabled = true\nhost = \" \"\n", "host"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key), "error for {text:?} was: {err}");
        }
    }

    #[test]
    fn topic_levels_are_safe() {
        assert_eq!(topic_level("traffic light"), "traffic_light");
        assert_eq!(topic_level("Person"), "person");
        assert_eq!(topic_level("a/b+#"), "a_b__");
        assert_eq!(topic_level(""), "_");
    }
}
