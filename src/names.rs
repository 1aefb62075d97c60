//! Names and values: topics, consumer groups, server ids, record values.
//!
//! Topic and group names become directory names on brokers and keys in the leader's
//! metadata, so they follow Kafka's rule (`[A-Za-z0-9._-]{1,249}`, and never `.` or
//! `..`): nothing named by a client can escape a data dir. The types convert from
//! `&str` without checking (the seed's API is `From<&str>`); every entry point calls
//! [`Topic::validate`] (or the group/server equivalent) before using one, and names
//! arriving over the wire are validated while they are deserialised. Names are
//! shared (`Arc<str>`): every consumed record carries its topic, and a clone is a
//! reference count, not an allocation.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The longest topic or group name accepted (Kafka's limit).
pub const MAX_NAME_LEN: usize = 249;
/// The longest server id accepted.
pub const MAX_SERVER_ID_LEN: usize = 255;

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("it is longer than {MAX_NAME_LEN} characters"))
    } else if name == "." || name == ".." {
        Some("'.' and '..' are reserved".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(invalid_name(what, name, reason)),
    }
}

fn invalid_name(what: &str, name: &str, reason: String) -> Error {
    let shown: String = name.chars().take(64).collect();
    Error::InvalidName {
        what: what.to_string(),
        name: shown,
        reason,
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        /// Names are validated as they are read off the wire.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// Makes a checked name.
            pub fn new(name: impl Into<String>) -> Result<Self, Error> {
                let name = Self(Arc::from(name.into()));
                name.validate()?;
                Ok(name)
            }

            /// Checks the naming rule (names made with `From` are unchecked until here).
            pub fn validate(&self) -> Result<(), Error> {
                $check($what, &self.0)
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                Self(Arc::from(name))
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self(Arc::from(name))
            }
        }

        impl From<&String> for $name {
            fn from(name: &String) -> Self {
                Self(Arc::from(name.as_str()))
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(name: &str) -> Result<Self, Error> {
                Self::new(name)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0.to_string()
            }
        }

        /// Lets maps keyed by name be searched with a `&str` (no allocation); the
        /// derived `Hash` and `Eq` are those of the inner `String`, as required.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

name_type!(
    /// A topic name: `[A-Za-z0-9._-]{1,249}`, not `.` or `..`.
    Topic,
    "topic",
    check_name
);

name_type!(
    /// A consumer group id: same rule as topics.
    ConsumerGroupId,
    "consumer group",
    check_name
);

name_type!(
    /// A server or client identity: a `host:port` address, or any unique name such as
    /// `consumer-1`. 1 to 255 printable ASCII characters without spaces, `/`, `?` or `#`.
    ServerId,
    "server id",
    check_server_id
);

fn check_server_id(what: &str, id: &str) -> Result<(), Error> {
    let reason = if id.is_empty() {
        Some("it is empty".to_string())
    } else if id.len() > MAX_SERVER_ID_LEN {
        Some(format!("it is longer than {MAX_SERVER_ID_LEN} characters"))
    } else {
        id.chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | '?' | '#' | '%' | '\\'))
            .map(|c| format!("character {c:?} is not allowed"))
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(invalid_name(what, id, reason)),
    }
}

/// A record's key or value: bytes. Strings convert as UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Value(Vec<u8>);

impl Value {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value(s.into_bytes())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value(bytes)
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value(bytes.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(bytes: &[u8; N]) -> Self {
        Value(bytes.to_vec())
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "{} bytes", self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_style_names_are_accepted() {
        for ok in ["orders", "a", "A.b_c-9", "..x", "x..", &"t".repeat(249)] {
            Topic::new(ok).unwrap();
            ConsumerGroupId::new(ok).unwrap();
        }
    }

    #[test]
    fn path_tricks_and_odd_characters_are_rejected() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a b",
            "é",
            "a\0b",
            "a\\b",
            &"t".repeat(250),
        ] {
            let err = Topic::new(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidName { ref what, .. } if what == "topic"),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ConsumerGroupId::from("x/y").validate(),
            Err(Error::InvalidName { what, .. }) if what == "consumer group"
        ));
    }

    #[test]
    fn server_ids_allow_addresses_and_names() {
        for ok in [
            "127.0.0.1:7070",
            "consumer-1",
            "[::1]:9000",
            "host.example:1",
        ] {
            ServerId::new(ok).unwrap();
        }
        for bad in ["", "a b", "x/y", "a?b", "a\nb"] {
            assert!(ServerId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Topic>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Topic>("\"..\"").is_err());
        assert_eq!(serde_json::to_string(&Topic::from("t")).unwrap(), "\"t\"");
    }

    #[test]
    fn values_convert_from_strings_and_bytes() {
        assert_eq!(Value::from("hi").as_bytes(), b"hi");
        assert_eq!(Value::from(vec![1u8, 2]).as_ref(), &[1, 2]);
        assert_eq!(Value::from(b"ab").into_bytes(), b"ab".to_vec());
    }
}
