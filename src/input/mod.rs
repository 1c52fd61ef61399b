//! The values people type, parsed once at the edge.
//!
//! Handlers never pass raw strings deeper than the route that received them: a
//! [`RoomCode`], [`DisplayName`] or [`MessageText`] exists only once its rules held,
//! and each refusal carries the sentence shown to the person who typed it. No
//! refusal quotes what was typed: the input may be a flood, and the sentence is
//! echoed into pages and logs.

use std::fmt;

use rand::Rng;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

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

    /// The code as text, four upper-case ASCII letters.
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

/// The name a person shows in a room.
///
/// It is stored in NFKC form, trimmed, with each run of inner whitespace shown as
/// one space: 1–32 characters, none of them control, invisible or formatting
/// characters. So what the room shows is what the person typed, and two names that
/// look alike cannot pass for two people (see [`DisplayName::same_person_as`]).
#[derive(Clone, Eq)]
pub struct DisplayName {
    /// The name as shown; the only part that equality, `Display` and JSON see.
    name: String,
    /// How the name looks as typed, case set aside afterwards: skeleton, fold,
    /// skeleton, fold (with `6` read as `b`). Built on the plain skeleton, so
    /// every pair that skeleton matches (`AIice` and `Alice`, `Ð` and `D̵`) still
    /// matches. Computed once here because every join compares the newcomer
    /// with each member.
    look: String,
    /// The name's [`closure`] under case and look-alikes, with `6` read as `b`:
    /// `B0B`, `bo6`, `BILL` and `6ill`, `ALlCE` and `alice` meet here.
    small: String,
    /// The name's [`closure`] with `5` and `8` read as `S` and `B`: `8OB` and
    /// `bob`, `5AM` and `sam` meet here.
    capitals: String,
}

impl DisplayName {
    /// Reads a name as typed: NFKC-normalised (full-width `ａlice` becomes `alice`),
    /// trimmed, each inner run of whitespace made one space, then checked.
    pub fn parse(typed: &str) -> Result<Self, Invalid> {
        // Normalise first so that every rule (and the length) applies to what is
        // stored and shown, not to the bytes that happened to arrive.
        let normalised: String = typed.nfkc().collect();
        let trimmed = normalised.trim();
        if trimmed.is_empty() {
            return Err(Invalid("Please type a name.".to_owned()));
        }
        // Before whitespace is collapsed: tabs and line breaks are whitespace too,
        // and a name with one inside is refused rather than quietly mended.
        if trimmed.chars().any(char::is_control) {
            return Err(Invalid(
                "A name cannot contain control characters.".to_owned(),
            ));
        }
        if trimmed.chars().any(invisible::is_invisible) {
            return Err(Invalid(
                "A name cannot contain invisible or formatting characters.".to_owned(),
            ));
        }
        // NBSP, ideographic and the other spaces are already U+0020 after NFKC; the
        // few that are not (U+1680, U+2028, U+2029) become one here too.
        let name = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Invalid(format!(
                "A name can be at most {MAX_NAME_CHARS} characters."
            )));
        }
        let as_typed = read(&read(&name, Reading::Small), Reading::Small);
        let folded = fold_case(&name);
        Ok(Self {
            look: as_typed,
            small: closure(&folded, Reading::Small),
            capitals: closure(&folded, Reading::Capitals),
            name,
        })
    }

    /// The name as shown in the room.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The keys [`same_person_as`](Self::same_person_as) compares (how the
    /// name looks as typed but for case, and its closure under case and
    /// look-alikes with digits read among small letters, and among capitals):
    /// a store that indexes names by them finds a look-alike with three
    /// lookups, each key compared only with the same key of other names.
    pub fn comparison_keys(&self) -> [&str; 3] {
        [&self.look, &self.small, &self.capitals]
    }

    /// Whether two names would be taken for one person: letter case never tells
    /// people apart, and neither does a look-alike character (`аlice` with a
    /// Cyrillic `а`, `AIice` with a capital `I`, `b0b` with a zero, `8ob`).
    ///
    /// Case folding and the UTS #39 skeleton do not commute: the skeleton maps
    /// `0` to `O` and `I` to `l`, across case, so folding only before it lets
    /// `b0b` (skeleton `bOb`) and `AIice` (`Alice`) pass for new names, and
    /// folding only after it misses `ALlCE`, which is `alice` in capitals. So
    /// beside the skeleton as typed (case folded after it), a name is compared
    /// by its [`closure`]: skeleton and fold, in small letters and in capitals,
    /// until nothing changes. Each key is a function of the plain skeleton or of
    /// the skeleton of the folded name, the two keys compared before, so every
    /// pair those matched still matches. The price: `i` and `l` meet in capitals
    /// (`I`), so `neil` and `nell` are one person here, as `neIl` and `nell`
    /// would look.
    pub fn same_person_as(&self, other: &DisplayName) -> bool {
        self.look == other.look || self.small == other.small || self.capitals == other.capitals
    }
}

/// Where a name settles when it is read without case, in small letters and in
/// capitals, with look-alikes taken for what they imitate: from the folded name,
/// skeleton and fold, upper-case, skeleton and fold again, until nothing
/// changes. `alice`, `ALlCE` and `AIice` settle on `allce`; `m`, `M` and `rn` on
/// `rn`; `b0b` and `B0B` on `bob`. The skeleton is not idempotent, so one round
/// is not always enough; a few are (the loop is bounded all the same).
fn closure(folded: &str, reading: Reading) -> String {
    let mut text = folded.to_owned();
    for _ in 0..CLOSURE_ROUNDS {
        let next = read(&read(&text, reading).to_uppercase(), reading);
        if next == text {
            break;
        }
        text = next;
    }
    text
}

/// Rounds of [`closure`] at most; a unit test checks that every character
/// settles within them.
const CLOSURE_ROUNDS: usize = 4;

/// `text`'s skeleton with its case folded.
fn read(text: &str, reading: Reading) -> String {
    fold_case(&skeleton(text, reading))
}

/// How a digit may be read in a name, beyond what the Unicode confusables data
/// says (it leaves `5`, `6` and `8` apart from every letter).
#[derive(Clone, Copy)]
enum Reading {
    /// Among small letters: `6` is a `b` (`bo6`).
    Small,
    /// Among capitals: `5` is an `S` and `8` a `B` (`8OB`, `5AM`).
    Capitals,
}

/// The UTS #39 skeleton of `text`, with the digits that pass for letters when
/// read as `reading` says. Each digit belongs to one reading only: were `6` a `b`
/// and `8` a `B` in the same key, folding case would make `guest6` and `guest8`
/// one person. The digits are mapped on the skeleton's output, so every character
/// the skeleton maps to them follows them, and `S`, `b` and `B` are themselves
/// skeleton prototypes.
fn skeleton(text: &str, reading: Reading) -> String {
    unicode_security::skeleton(text)
        .map(|c| match (reading, c) {
            (Reading::Small, '6') => 'b',
            (Reading::Capitals, '5') => 'S',
            (Reading::Capitals, '8') => 'B',
            (_, other) => other,
        })
        .collect()
}

/// `text` with letter case erased, close to Unicode full case folding (which the
/// standard library lacks).
///
/// Lower-casing alone misses letters whose upper case is longer: `ß` and `ẞ` must
/// meet `SS`, and `ῷ` (with a subscript iota) must meet `Ω͂Ι`. Going down, up and down
/// again brings each of these spellings to one form (`ss`, `ῶι`).
fn fold_case(text: &str) -> String {
    text.to_lowercase().to_uppercase().to_lowercase()
}

/// Two names are equal when they show the same text; the comparison keys are
/// derived from that text, so comparing them too would only cost time.
impl PartialEq for DisplayName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Shows only the name: the comparison keys would clutter every log line.
impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DisplayName").field(&self.name).finish()
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A name serialises as its plain text, like a string.
impl Serialize for DisplayName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

/// A chat message: trimmed, at least one visible character, at most the configured
/// limit.
///
/// Line breaks and tabs are kept (a message may span lines; `\r\n` becomes `\n`);
/// any other control character is refused. Invisible and formatting characters may
/// appear inside (emoji sequences join with ZWJ, Persian needs ZWNJ), but a message
/// made of nothing else is refused. Messages are not NFKC-normalised: that would
/// rewrite what people meant (`x²` would become `x2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Reads a message as typed, at most `max_chars` characters once trimmed.
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
        // A message of only zero-width spaces would post a blank line that no one
        // can see, attributed to someone: treat it as empty.
        if text
            .chars()
            .all(|c| c.is_whitespace() || invisible::is_invisible(c))
        {
            return Err(Invalid(
                "A message cannot be only invisible characters.".to_owned(),
            ));
        }
        Ok(Self(text))
    }

    /// The message text, for the event that carries it.
    pub fn into_string(self) -> String {
        self.0
    }
}

mod invisible;

/// Longest idempotency key, in characters.
const MAX_KEY_CHARS: usize = 64;

/// A client's name for one message it sends, so that sending it again (the
/// answer was lost on the way back) stores it once: 1–64 letters, digits, `-`,
/// `_`, `.` or `~` (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(sent: &str) -> Result<Self, Invalid> {
        let valid = (1..=MAX_KEY_CHARS).contains(&sent.len())
            && sent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        match valid {
            true => Ok(Self(sent.to_owned())),
            false => Err(Invalid(format!(
                "An idempotency key is 1 to {MAX_KEY_CHARS} letters, digits, '-', '_', '.' or '~'."
            ))),
        }
    }

    /// A fresh random key, for the forms we render.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_short_plain_tokens() {
        for good in [
            "a",
            "550e8400-e29b-41d4-a716-446655440000",
            "x.y~z_1",
            &"k".repeat(64),
        ] {
            assert!(IdempotencyKey::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", " a", "a b", "ключ", "a/b", &"k".repeat(65)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(IdempotencyKey::random().as_str()).is_ok());
    }

    /// A name the test knows to be valid.
    fn name(typed: &str) -> DisplayName {
        DisplayName::parse(typed).unwrap()
    }

    /// The sentence a refused name is answered with.
    fn refusal(typed: &str) -> String {
        DisplayName::parse(typed).unwrap_err().0
    }

    /// The sentence for a name with an invisible or formatting character.
    const INVISIBLE_REFUSAL: &str = "A name cannot contain invisible or formatting characters.";

    /// Codes are read without regard to case or surrounding spaces.
    #[test]
    fn room_codes_ignore_case_and_surrounding_space() {
        // Act
        let code = RoomCode::parse("  kqZd ").unwrap();

        // Assert
        assert_eq!(code.as_str(), "KQZD");
    }

    /// Anything but exactly four ASCII letters is refused.
    #[test]
    fn room_codes_are_exactly_four_letters() {
        for bad in ["", "ABC", "ABCDE", "AB1D", "AB D", "ÄBCD", "ABÇ"] {
            assert!(RoomCode::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// Every random code parses back to itself.
    #[test]
    fn random_codes_are_valid_codes() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let code = RoomCode::random(&mut rng);
            assert_eq!(RoomCode::parse(code.as_str()), Ok(code));
        }
    }

    /// Names are trimmed, at most 32 characters and free of control characters.
    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  alice ").as_str(), "alice");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(32)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(33)).is_err());
        assert!(DisplayName::parse("al\u{7}ice").is_err());
        assert!(DisplayName::parse("al\nice").is_err());
    }

    /// Full-width letters become their plain forms, so `ａlice` is shown as `alice`.
    #[test]
    fn names_are_nfkc_normalised() {
        // Act
        let full_width = name("\u{FF41}lice");

        // Assert
        assert_eq!(full_width.as_str(), "alice");
        assert_eq!(full_width, name("alice"));
    }

    /// The 32-character limit counts the normalised name: `e` + combining acute is one.
    #[test]
    fn name_length_is_counted_after_normalisation() {
        // Arrange: 64 code points typed, 32 characters once composed.
        let typed = "e\u{301}".repeat(32);

        // Act
        let parsed = DisplayName::parse(&typed);

        // Assert
        assert_eq!(parsed.unwrap().as_str(), "é".repeat(32));
    }

    /// Inner runs of spaces of any kind are shown as one ASCII space.
    #[test]
    fn inner_whitespace_collapses_to_one_space() {
        assert_eq!(name("mary   jane").as_str(), "mary jane");
        assert_eq!(name("mary\u{A0}\u{3000} jane").as_str(), "mary jane");
        assert_eq!(name("mary\u{2028}jane").as_str(), "mary jane");
    }

    /// A long run of spaces inside does not count against the length limit.
    #[test]
    fn collapsed_spaces_do_not_count_towards_the_limit() {
        // Arrange
        let typed = format!("{}{}{}", "a".repeat(15), " ".repeat(40), "b".repeat(15));

        // Act
        let parsed = DisplayName::parse(&typed);

        // Assert
        assert_eq!(parsed.unwrap().as_str().chars().count(), 31);
    }

    /// A name of only spaces, no-break spaces or ideographic spaces is blank.
    #[test]
    fn names_of_only_spaces_are_refused() {
        for blank in [
            "   ",
            "\u{A0}\u{A0}",
            "\u{3000}",
            " \u{A0}\u{3000}\u{2003} ",
        ] {
            assert_eq!(refusal(blank), "Please type a name.", "{blank:?}");
        }
    }

    /// A zero-width space inside a name is refused, with a sentence that says why.
    #[test]
    fn zero_width_space_inside_a_name_is_refused() {
        assert_eq!(refusal("al\u{200B}ice"), INVISIBLE_REFUSAL);
    }

    /// A name that is only a zero-width space is refused, not shown as a blank.
    #[test]
    fn zero_width_space_alone_is_refused() {
        assert_eq!(refusal("\u{200B}"), INVISIBLE_REFUSAL);
    }

    /// A right-to-left override, which would reverse the text after the name, is refused.
    #[test]
    fn bidi_override_is_refused() {
        assert_eq!(refusal("bob\u{202E}"), INVISIBLE_REFUSAL);
    }

    /// The Hangul filler, which renders as a blank, is refused.
    #[test]
    fn hangul_filler_is_refused() {
        assert_eq!(refusal("\u{3164}"), INVISIBLE_REFUSAL);
        assert_eq!(refusal("\u{FFA0}"), INVISIBLE_REFUSAL);
    }

    /// The braille blank, which renders as an empty cell, is refused.
    #[test]
    fn braille_blank_is_refused() {
        assert_eq!(refusal("\u{2800}"), INVISIBLE_REFUSAL);
    }

    /// Each of the listed invisible and formatting characters is refused inside a name.
    #[test]
    fn every_listed_invisible_character_is_refused() {
        let listed = [
            '\u{AD}',
            '\u{34F}',
            '\u{61C}',
            '\u{115F}',
            '\u{1160}',
            '\u{17B4}',
            '\u{17B5}',
            '\u{180B}',
            '\u{180E}',
            '\u{180F}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2069}',
            '\u{2800}',
            '\u{3164}',
            '\u{FE00}',
            '\u{FE0F}',
            '\u{FEFF}',
            '\u{FFA0}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{1D173}',
            '\u{1D17A}',
            '\u{E0001}',
            '\u{E0020}',
            '\u{E007F}',
            '\u{E0100}',
            '\u{E01EF}',
        ];
        for c in listed {
            assert_eq!(refusal(&format!("al{c}ice")), INVISIBLE_REFUSAL, "{c:?}");
        }
    }

    /// NFKC never turns an invisible character into a visible one, so checking the
    /// normalised name is as strict as checking what was typed.
    #[test]
    fn normalisation_keeps_invisible_characters_invisible() {
        for c in invisible::all() {
            let normalised: String = c.to_string().nfkc().collect();
            assert!(
                normalised.chars().all(invisible::is_invisible),
                "{c:?} normalises to {normalised:?}"
            );
        }
    }

    /// The table covers every default-ignorable character, cross-checked against the
    /// UTS #39 skeleton, which drops exactly those.
    #[test]
    fn table_covers_every_default_ignorable_character() {
        let planes = ('\0'..='\u{1FFFF}').chain('\u{E0000}'..='\u{E0FFF}');
        for c in planes {
            if unicode_security::skeleton(&c.to_string()).next().is_none() {
                assert!(invisible::is_invisible(c), "{c:?} is default-ignorable");
            }
        }
    }

    /// The refusal never quotes the name, however long.
    #[test]
    fn name_refusals_do_not_echo_the_input() {
        // Arrange
        let flood = "x".repeat(10_000);

        // Act
        let refused = refusal(&flood);

        // Assert
        assert!(!refused.contains("xx"), "{refused}");
    }

    /// Names that differ only in letter case belong to the same person.
    #[test]
    fn names_match_without_regard_to_case() {
        assert!(name("Alice").same_person_as(&name("aLICE")));
        assert!(name("ALICE").same_person_as(&name("alice")));
    }

    /// Letters whose upper case is longer still match it: `ß`, `ẞ` and `SS`; `ῷ` and `Ω͂Ι`.
    #[test]
    fn names_match_across_lengthening_case_changes() {
        assert!(name("straße").same_person_as(&name("STRASSE")));
        assert!(name("STRAẞE").same_person_as(&name("strasse")));
        assert!(name("\u{1FF7}").same_person_as(&name("\u{3A9}\u{342}\u{399}")));
    }

    /// A Cyrillic `а` (U+0430) does not make `alice` a second person.
    #[test]
    fn cyrillic_lookalike_is_the_same_person() {
        // Arrange
        let fake = name("\u{430}lice");
        let real = name("alice");

        // Act
        let same = fake.same_person_as(&real);

        // Assert
        assert_ne!(fake, real, "the shown text differs");
        assert!(same);
    }

    /// A capital `I` does not make `Alice` a second person.
    #[test]
    fn capital_i_for_small_l_is_the_same_person() {
        assert!(name("AIice").same_person_as(&name("Alice")));
        assert!(name("Alice").same_person_as(&name("AIice")));
    }

    /// Names that do not look alike belong to different people, in any case.
    #[test]
    fn different_names_are_different_people() {
        for (one, other) in [
            ("bob", "alice"),
            ("alice", "alicia"),
            ("bob", "rob"),
            ("anna", "ann"),
            ("ben", "ban"),
            ("dan", "don"),
            ("lily", "lilly"),
            ("emil", "email"),
            ("joe", "jo3"),
            ("BOB", "ROB"),
            ("Anna", "ANN"),
            ("guest6", "guest8"),
            ("team5", "team6"),
        ] {
            assert!(!name(one).same_person_as(&name(other)), "{one} vs {other}");
            assert!(!name(other).same_person_as(&name(one)), "{other} vs {one}");
        }
    }

    /// The mixes of case and look-alike characters seen passing in issue 21, and
    /// more of their kind, are the same person as the name they imitate.
    #[test]
    fn case_and_look_alike_mixed_are_the_same_person() {
        for (member, newcomer) in [
            ("bob", "b0b"),
            ("bob", "bo6"),
            ("bob", "8ob"),
            ("bob", "B0B"),
            ("bob", "6o6"),
            ("bob", "8O8"),
            ("BILL", "6ill"),
            ("bI", "6i"),
            ("alice", "AIice"),
            ("alice", "ALlCE"),
            ("alice", "A1ICE"),
            ("alice", "\u{410}LICE"),
            ("Sam", "5am"),
            ("mary", "RNARY"),
            ("MARY", "rnary"),
        ] {
            assert!(
                name(member).same_person_as(&name(newcomer)),
                "{member} vs {newcomer}"
            );
            assert!(
                name(newcomer).same_person_as(&name(member)),
                "{newcomer} vs {member}"
            );
        }
    }

    /// Every character settles within [`CLOSURE_ROUNDS`]: one more round
    /// changes nothing.
    #[test]
    fn every_character_settles_within_the_closure_rounds() {
        for c in ('\0'..='\u{1FFFF}').chain('\u{E0000}'..='\u{E0FFF}') {
            for reading in [Reading::Small, Reading::Capitals] {
                let settled = closure(&fold_case(&c.to_string()), reading);
                let again = read(&read(&settled, reading).to_uppercase(), reading);
                assert_eq!(again, settled, "{c:?}");
            }
        }
    }

    /// What the comparison gives up: `i` and `l` meet in capitals (`I`), so names
    /// that differ only there are one person, as `neIl` and `nell` would look.
    #[test]
    fn i_and_l_are_one_letter_once_case_is_ignored() {
        assert!(name("neil").same_person_as(&name("nell")));
        assert!(name("alice").same_person_as(&name("allce")));
    }

    /// Equality and JSON see only the shown text.
    #[test]
    fn names_compare_and_serialise_as_their_text() {
        // Arrange
        let alice = name(" alice ");

        // Act
        let json = serde_json::to_string(&alice).unwrap();

        // Assert
        assert_eq!(json, "\"alice\"");
        assert_eq!(alice, name("alice"));
        assert_ne!(alice, name("Alice"));
    }

    /// Messages keep line breaks and tabs and refuse other control characters.
    #[test]
    fn messages_keep_line_breaks_and_refuse_other_controls() {
        let text = MessageText::parse(" hi\r\nthere ", 10).unwrap();
        assert_eq!(text.into_string(), "hi\nthere");
        assert!(MessageText::parse("a\u{0}b", 10).is_err());
        assert!(MessageText::parse(" \n ", 10).is_err());
        assert!(MessageText::parse(&"x".repeat(11), 10).is_err());
        assert!(MessageText::parse(&"x".repeat(10), 10).is_ok());
    }

    /// An emoji sequence joined with ZWJ is kept as typed.
    #[test]
    fn messages_keep_zero_width_joiners() {
        // Arrange: woman, ZWJ, laptop; then a heart with variation selector 16.
        let typed = "\u{1F469}\u{200D}\u{1F4BB} \u{2764}\u{FE0F}";

        // Act
        let text = MessageText::parse(typed, 100).unwrap();

        // Assert
        assert_eq!(text.into_string(), typed);
    }

    /// Persian text keeps its zero-width non-joiner.
    #[test]
    fn messages_keep_zero_width_non_joiners() {
        let typed = "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}";
        assert_eq!(MessageText::parse(typed, 100).unwrap().into_string(), typed);
    }

    /// A message of only zero-width spaces is refused.
    #[test]
    fn messages_of_only_invisible_characters_are_refused() {
        // Act
        let refused = MessageText::parse("\u{200B}\u{200B}", 100);

        // Assert
        assert_eq!(
            refused,
            Err(Invalid(
                "A message cannot be only invisible characters.".to_owned()
            ))
        );
    }

    /// Invisible characters mixed with whitespace are still an empty message.
    #[test]
    fn invisible_characters_and_whitespace_are_refused() {
        for blank in [
            "\u{200B} \u{2060}\n\u{FEFF}",
            "\u{3164}\t\u{2800}",
            "\u{E0020} \u{FE0F}",
        ] {
            assert!(MessageText::parse(blank, 100).is_err(), "{blank:?}");
        }
    }

    /// Messages are not NFKC-normalised: full-width and superscript text stays.
    #[test]
    fn messages_are_not_normalised() {
        let typed = "\u{FF41}lice x\u{B2}";
        assert_eq!(MessageText::parse(typed, 100).unwrap().into_string(), typed);
    }

    /// The refusal of a too-long message never quotes it.
    #[test]
    fn message_refusals_do_not_echo_the_input() {
        // Arrange
        let flood = "y".repeat(10_000);

        // Act
        let refused = MessageText::parse(&flood, 100).unwrap_err().0;

        // Assert
        assert!(!refused.contains("yy"), "{refused}");
    }
}
