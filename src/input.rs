//! The values people type, parsed once at the edge.
//!
//! Handlers never pass raw strings deeper than the route that received them: a
//! [`RoomCode`], [`DisplayName`] or [`MessageText`] exists only once its rules held,
//! and each refusal carries the sentence shown to the person who typed it.

use std::fmt;

use rand::Rng;
use serde::Serialize;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Letters in a room code.
const CODE_LEN: usize = 4;

/// Why a typed value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room's four-letter code, always upper case (`KQZD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode([u8; CODE_LEN]);

impl RoomCode {
    /// Reads a code as people type it: surrounding spaces and letter case do not matter.
    pub fn parse(typed: &str) -> Result<Self, Invalid> {
        let trimmed = typed.trim();
        let refusal = || Invalid("A room code is 4 letters, like KQZD.".to_owned());
        let bytes: [u8; CODE_LEN] = trimmed.as_bytes().try_into().map_err(|_| refusal())?;
        if !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(refusal());
        }
        Ok(Self(bytes.map(|b| b.to_ascii_uppercase())))
    }

    /// A code drawn uniformly from the 26⁴ possible ones.
    pub fn random(rng: &mut impl Rng) -> Self {
        Self(std::array::from_fn(|_| rng.random_range(b'A'..=b'Z')))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }
}

impl fmt::Display for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoomCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The name a person shows in a room: 1–32 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(typed: &str) -> Result<Self, Invalid> {
        let name = typed.trim();
        if name.is_empty() {
            return Err(Invalid("Please type a name.".to_owned()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Invalid(format!(
                "A name can be at most {MAX_NAME_CHARS} characters."
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid(
                "A name cannot contain control characters.".to_owned(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Two names that differ only in letter case belong to the same person.
    pub fn same_person_as(&self, other: &DisplayName) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A chat message: trimmed, at least one character, at most the configured limit.
///
/// Line breaks and tabs are kept (a message may span lines; `\r\n` becomes `\n`);
/// any other control character is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(typed: &str, max_chars: usize) -> Result<Self, Invalid> {
        let text = typed.trim().replace("\r\n", "\n");
        if text.is_empty() {
            return Err(Invalid("A message cannot be empty.".to_owned()));
        }
        if text.chars().count() > max_chars {
            return Err(Invalid(format!(
                "A message can be at most {max_chars} characters."
            )));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Invalid(
                "A message cannot contain control characters.".to_owned(),
            ));
        }
        Ok(Self(text))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_codes_ignore_case_and_surrounding_space() {
        assert_eq!(RoomCode::parse("  kqZd ").unwrap().as_str(), "KQZD");
    }

    #[test]
    fn room_codes_are_exactly_four_letters() {
        for bad in ["", "ABC", "ABCDE", "AB1D", "AB D", "ÄBCD", "ABÇ"] {
            assert!(RoomCode::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn random_codes_are_valid_codes() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let code = RoomCode::random(&mut rng);
            assert_eq!(RoomCode::parse(code.as_str()), Ok(code));
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  alice ").unwrap().as_str(), "alice");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(32)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(33)).is_err());
        assert!(DisplayName::parse("al\u{7}ice").is_err());
        assert!(DisplayName::parse("al\nice").is_err());
    }

    #[test]
    fn names_match_without_regard_to_case() {
        let a = DisplayName::parse("Alice").unwrap();
        let b = DisplayName::parse("aLICE").unwrap();
        assert!(a.same_person_as(&b));
    }

    #[test]
    fn messages_keep_line_breaks_and_refuse_other_controls() {
        let text = MessageText::parse(" hi\r\nthere ", 10).unwrap();
        assert_eq!(text.into_string(), "hi\nthere");
        assert!(MessageText::parse("a\u{0}b", 10).is_err());
        assert!(MessageText::parse(" \n ", 10).is_err());
        assert!(MessageText::parse(&"x".repeat(11), 10).is_err());
        assert!(MessageText::parse(&"x".repeat(10), 10).is_ok());
    }
}
