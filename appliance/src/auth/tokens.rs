//! API tokens for scripts and WHEP clients (`Authorization: Bearer`).
//! Only their SHA-256 is stored (a token is 256 random bits, so a fast hash
//! is enough), one `name hash` line each, in the state directory's `tokens`.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// What every token starts with, so a leaked one is easy to recognise.
pub const PREFIX: &str = "mado_";

/// Why a token list could not be read or changed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// A line of the file is not `name hash`.
    #[error("tokens line {0} is not `name sha256-hex`")]
    BadLine(usize),
    /// A name with spaces or control characters, or empty.
    #[error("a token name must be 1 to 64 letters, digits, '-', '_' or '.'")]
    BadName,
    /// The name is taken.
    #[error("a token named {0:?} exists already")]
    Exists(String),
    /// No token of that name.
    #[error("no token named {0:?}")]
    Unknown(String),
}

/// A token from 32 random bytes: `mado_` and 64 hex digits.
pub fn generate(random: &[u8; 32]) -> String {
    format!("{PREFIX}{}", super::hex(random))
}

fn digest(token: &str) -> String {
    super::hex(&Sha256::digest(token.trim().as_bytes()))
}

/// The stored tokens: names and hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenList {
    entries: Vec<(String, String)>,
}

impl TokenList {
    /// Parses the `tokens` file; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(hash), None) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    entries.push((name.to_owned(), hash.to_ascii_lowercase()));
                }
                _ => return Err(TokenError::BadLine(n + 1)),
            }
        }
        Ok(Self { entries })
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|(name, hash)| format!("{name} {hash}\n"))
            .collect()
    }

    /// Adds `token` under `name`.
    pub fn add(&mut self, name: &str, token: &str) -> Result<(), TokenError> {
        let valid =
            (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(TokenError::BadName);
        }
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(TokenError::Exists(name.into()));
        }
        self.entries.push((name.to_owned(), digest(token)));
        Ok(())
    }

    /// Removes the token called `name`.
    pub fn revoke(&mut self, name: &str) -> Result<(), TokenError> {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        if self.entries.len() == before {
            return Err(TokenError::Unknown(name.into()));
        }
        Ok(())
    }

    /// The names of the tokens.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The name of the token `token` is, if it is one.
    pub fn find(&self, token: &str) -> Option<&str> {
        if !token.starts_with(PREFIX) {
            return None;
        }
        let hash = digest(token);
        self.entries.iter().find(|(_, h)| *h == hash).map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_value_stored_hashed_and_revocable() {
        let (a, b) = (generate(&[1; 32]), generate(&[2; 32]));
        assert!(a.starts_with("mado_") && a.len() == 69);
        let mut list = TokenList::default();
        list.add("backup-script", &a).unwrap();
        list.add("nvr", &b).unwrap();
        let text = list.to_text();
        assert!(!text.contains(&a[5..]), "the file holds no token");
        let list2 = TokenList::parse(&format!("# tokens\n\n{text}")).unwrap();
        assert_eq!(list2, list);
        assert_eq!(list2.find(&a), Some("backup-script"));
        assert_eq!(list2.find(&b), Some("nvr"));
        assert_eq!(list2.find(&generate(&[3; 32])), None);
        assert_eq!(list2.find(""), None);
        let mut list3 = list2.clone();
        list3.revoke("nvr").unwrap();
        assert_eq!(list3.find(&b), None);
        assert_eq!(list3.names().collect::<Vec<_>>(), ["backup-script"]);
    }

    #[test]
    fn bad_names_lines_and_duplicates_are_errors() {
        let mut list = TokenList::default();
        assert_eq!(list.add("has space", "mado_x"), Err(TokenError::BadName));
        assert_eq!(list.add("", "mado_x"), Err(TokenError::BadName));
        list.add("a", "mado_x").unwrap();
        assert_eq!(list.add("a", "mado_y"), Err(TokenError::Exists("a".into())));
        assert_eq!(list.revoke("b"), Err(TokenError::Unknown("b".into())));
        assert_eq!(TokenList::parse("a b c\n"), Err(TokenError::BadLine(1)));
        assert_eq!(TokenList::parse("ok 1234\n"), Err(TokenError::BadLine(1)));
    }
}
