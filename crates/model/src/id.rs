//! Container identifiers: 64 lowercase hex characters, as Docker makes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A full container ID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid container id {0:?}")]
    Invalid(String),
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)
}

impl ContainerId {
    /// A fresh random ID.
    pub fn generate() -> Self {
        loop {
            let hex = random_hex(32);
            // Docker never hands out an all-digit short ID: it would read as a number.
            if !hex[..12].bytes().all(|b| b.is_ascii_digit()) {
                return Self(hex);
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character form `docker ps` shows.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Invalid(s.to_owned()))
        }
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ContainerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ContainerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_are_unique() {
        let a = ContainerId::generate();
        let b = ContainerId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<ContainerId>().expect("valid"), a);
        assert_eq!(a.short().len(), 12);
    }

    #[test]
    fn id_rejects_short_and_uppercase() {
        assert!("abc".parse::<ContainerId>().is_err());
        assert!("A".repeat(64).parse::<ContainerId>().is_err());
    }
}
