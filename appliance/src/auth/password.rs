//! The password: argon2id hashes in PHC format, checks on a new password,
//! and a generated first password.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use thiserror::Error;

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 8;
/// The longest password accepted (argon2 takes any length; this bounds work).
pub const MAX_LENGTH: usize = 1024;

/// Why a password could not be set or checked.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Shorter than [`MIN_LENGTH`] characters.
    #[error("the password must have at least {MIN_LENGTH} characters")]
    TooShort,
    /// Longer than [`MAX_LENGTH`] bytes.
    #[error("the password must have at most {MAX_LENGTH} bytes")]
    TooLong,
    /// The stored hash is not an argon2 PHC string.
    #[error("the stored password hash is unreadable: {0}")]
    BadHash(String),
}

/// Checks that `password` may be set.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The argon2id hash of `password` with `salt` (16 random bytes), as a PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash(password: &str, salt: &[u8; 16]) -> Result<String, PasswordError> {
    check_new(password)?;
    let salt = SaltString::encode_b64(salt).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::BadHash(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored.trim()).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if password.len() > MAX_LENGTH {
        return Ok(false);
    }
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Letters and digits that cannot be mistaken for one another (no i, l, o
/// and no 0): 32 of them, 5 bits each.
const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz123456789";

/// A password made from 20 random bytes: four groups of five characters
/// (100 bits), easy to type from the log.
pub fn generate(random: &[u8; 20]) -> String {
    let mut out = String::with_capacity(23);
    for (i, byte) in random.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(byte & 31)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let stored = hash("correct horse", &[9; 16]).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert_eq!(verify("correct horse", &stored), Ok(true));
        assert_eq!(verify("correct horsf", &stored), Ok(false));
        assert_eq!(verify("", &stored), Ok(false));
        assert_ne!(hash("correct horse", &[8; 16]).unwrap(), stored, "the salt counts");
    }

    #[test]
    fn bad_passwords_and_hashes_are_errors() {
        assert_eq!(hash("short", &[0; 16]), Err(PasswordError::TooShort));
        assert_eq!(check_new(&"x".repeat(2000)), Err(PasswordError::TooLong));
        assert!(matches!(
            verify("whatever", "not a hash"),
            Err(PasswordError::BadHash(_))
        ));
    }

    #[test]
    fn generated_passwords_are_four_groups_of_unambiguous_characters() {
        let a = generate(&[0; 20]);
        let b = generate(&core::array::from_fn(|i| i as u8 * 13));
        assert_eq!(a, "aaaaa-aaaaa-aaaaa-aaaaa");
        assert_eq!(b.len(), 23);
        assert!(b.split('-').all(|g| g.len() == 5));
        assert!(b.bytes().all(|c| c == b'-' || ALPHABET.contains(&c)));
        assert!(check_new(&b).is_ok());
    }
}
