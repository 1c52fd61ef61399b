//! Property tests for the values people type: room codes, display names, messages
//! and the event id a stream resumes after.
//!
//! Each property is checked on a few hundred generated inputs: arbitrary Unicode
//! strings, and strings built on purpose from ASCII, whitespace and the invisible
//! and formatting characters that the security issue names, which arbitrary strings
//! would seldom hit; and names imitated by flipping letter case and swapping
//! letters for look-alikes from a table of our own.

use chat_live_room::events::resume_point;
use chat_live_room::input::{DisplayName, MAX_NAME_CHARS, MessageText, RoomCode};
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

/// The invisible and formatting characters the issue names, as inclusive ranges:
/// format characters (general category Cf) and the other default-ignorable and
/// filler code points, plus the braille blank. The test's own list, so that the
/// properties do not merely repeat the table in `input.rs`.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E007F}'),
    ('\u{E0100}', '\u{E01EF}'),
];

/// Whether the issue names `c` as invisible or formatting.
fn is_invisible(c: char) -> bool {
    INVISIBLE
        .iter()
        .any(|&(low, high)| (low..=high).contains(&c))
}

/// One of the invisible characters, from anywhere in the ranges.
fn invisible() -> impl Strategy<Value = char> {
    prop::sample::select(INVISIBLE).prop_flat_map(|(low, high)| prop::char::range(low, high))
}

/// Whitespace of the kinds people paste: ASCII, line breaks, no-break and wide spaces.
fn whitespace() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        ' ', '\t', '\n', '\r', '\u{A0}', '\u{2003}', '\u{3000}', '\u{2028}',
    ])
}

/// Text mixing ASCII, whitespace and invisible characters.
fn mixed_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::char::range(' ', '~'),
        1 => whitespace(),
        1 => invisible(),
    ];
    prop::collection::vec(piece, 0..48).prop_map(String::from_iter)
}

/// Text made only of invisible characters and whitespace.
fn blank_looking_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![invisible(), whitespace()];
    prop::collection::vec(piece, 0..40).prop_map(String::from_iter)
}

/// Anything a person might type as a name, well-formed or not.
fn typed_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        mixed_text(),
        "[a-zA-Z0-9][a-zA-Z0-9 _.-]{0,30}",
        "\\PC{1,36}",
    ]
}

/// Look-alikes a person could type for a character of a name, from our own
/// table rather than the Unicode data the code uses: `0` for `o`, `rn` for `m`,
/// the `l`/`I`/`1`/`|` family, Cyrillic letters drawn like Latin ones, and digits
/// drawn like letters. A digit is read either among small letters (`6` for `b`)
/// or among capitals (`5` for `S`, `8` for `B`), and one name is read one way:
/// were `6` and `8` both `b`, `guest6` and `guest8` would be one person.
fn look_alikes(c: char, capitals: bool) -> &'static [&'static str] {
    match (c, capitals) {
        ('b', false) => &["6"],
        ('s' | 'S', true) => &["5"],
        ('B', true) => &["8"],
        ('o', _) => &["0", "O", "\u{43E}"],
        ('O', _) => &["0", "o", "\u{41E}"],
        ('l', _) => &["1", "I", "|"],
        ('I', _) => &["l", "1", "|"],
        ('m', _) => &["rn"],
        ('a', _) => &["\u{430}"],
        ('A', _) => &["\u{410}"],
        ('e', _) => &["\u{435}"],
        ('E', _) => &["\u{415}"],
        ('p', _) => &["\u{440}"],
        ('c', _) => &["\u{441}"],
        ('x', _) => &["\u{445}"],
        _ => &[],
    }
}

/// `base` with each letter's case perhaps flipped and then, one time in two
/// where the table has any, swapped for one of its [`look_alikes`], with digits
/// read among capitals or among small letters as `capitals` says.
fn look_alike_of(base: String) -> impl Strategy<Value = String> {
    let len = base.chars().count();
    let choices = prop::collection::vec((any::<bool>(), any::<prop::sample::Index>()), len);
    (choices, any::<bool>()).prop_map(move |(choices, capitals)| {
        base.chars()
            .zip(choices)
            .map(|(c, (flip, pick))| {
                let c = match (flip, c.is_ascii_lowercase()) {
                    (false, _) => c,
                    (true, true) => c.to_ascii_uppercase(),
                    (true, false) => c.to_ascii_lowercase(),
                };
                let options = look_alikes(c, capitals);
                let at = pick.index(options.len() * 2 + 1);
                options.get(at).map_or(c.to_string(), |s| (*s).to_owned())
            })
            .collect()
    })
}

/// A name of Latin letters and a look-alike variant of it.
fn name_and_look_alike() -> impl Strategy<Value = (String, String)> {
    "[a-zA-Z]{1,12}".prop_flat_map(|base| (Just(base.clone()), look_alike_of(base)))
}

proptest! {
    // No regressions file: a failure prints its shrunk input, which belongs in a
    // named unit test in `input.rs` rather than in a file of seeds beside this one.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Parsing a room code never panics, and accepts exactly four ASCII letters
    /// between optional whitespace, giving them in upper case.
    #[test]
    fn room_codes_are_exactly_four_letters(
        typed in prop_oneof![any::<String>(), "[ \t\n]{0,2}[a-zA-Z0-9é]{3,5}[ \t\n]{0,2}"],
    ) {
        // Arrange
        let trimmed = typed.trim();
        let four_letters =
            trimmed.len() == 4 && trimmed.bytes().all(|b| b.is_ascii_alphabetic());

        // Act
        let parsed = RoomCode::parse(&typed);

        // Assert
        match parsed {
            Ok(code) => {
                prop_assert!(four_letters, "{typed:?} was accepted");
                prop_assert_eq!(code.as_str(), trimmed.to_ascii_uppercase());
            }
            Err(_) => prop_assert!(!four_letters, "{typed:?} was refused"),
        }
    }

    /// A parsed room code parses back to itself.
    #[test]
    fn room_codes_round_trip(typed in "[a-zA-Z]{4}") {
        // Arrange
        let code = RoomCode::parse(&typed).unwrap();

        // Act
        let again = RoomCode::parse(code.as_str());

        // Assert
        prop_assert_eq!(again, Ok(code));
    }

    /// Parsing a name never panics, and an accepted name is 1–32 characters with no
    /// control or invisible characters, no whitespace at either end or in runs, is
    /// NFKC-stable, and parses back to itself.
    #[test]
    fn accepted_names_are_clean_and_stable(typed in typed_name()) {
        // Act
        let Ok(name) = DisplayName::parse(&typed) else {
            return Ok(());
        };

        // Assert
        let shown = name.as_str();
        prop_assert!((1..=MAX_NAME_CHARS).contains(&shown.chars().count()), "{shown:?}");
        prop_assert!(!shown.chars().any(char::is_control), "{shown:?}");
        prop_assert!(!shown.chars().any(is_invisible), "{shown:?}");
        prop_assert_eq!(shown.trim(), shown);
        prop_assert!(
            shown.chars().filter(|c| c.is_whitespace()).all(|c| c == ' '),
            "{shown:?}"
        );
        prop_assert!(!shown.contains("  "), "{shown:?}");
        prop_assert_eq!(shown.nfkc().collect::<String>(), shown);
        prop_assert_eq!(DisplayName::parse(shown), Ok(name.clone()));
    }

    /// Putting any invisible character anywhere into an accepted name gets it refused.
    #[test]
    fn an_invisible_character_anywhere_is_refused(
        typed in typed_name(),
        hidden in invisible(),
        at in any::<prop::sample::Index>(),
    ) {
        // Arrange
        let Ok(name) = DisplayName::parse(&typed) else {
            return Ok(());
        };
        let mut chars: Vec<char> = name.as_str().chars().collect();
        chars.insert(at.index(chars.len() + 1), hidden);
        let tampered = String::from_iter(chars);

        // Act
        let parsed = DisplayName::parse(&tampered);

        // Assert
        prop_assert!(parsed.is_err(), "{tampered:?} was accepted");
    }

    /// A name is the same person as itself and as its upper- and lower-case forms.
    #[test]
    fn a_name_is_the_same_person_in_any_case(typed in typed_name()) {
        // Arrange
        let Ok(name) = DisplayName::parse(&typed) else {
            return Ok(());
        };
        let cased = [name.as_str().to_uppercase(), name.as_str().to_lowercase()];

        // Act and assert
        prop_assert!(name.same_person_as(&name));
        for other in cased.iter().filter_map(|c| DisplayName::parse(c).ok()) {
            prop_assert!(name.same_person_as(&other), "{name:?} vs {other:?}");
            prop_assert!(other.same_person_as(&name), "{other:?} vs {name:?}");
        }
    }

    /// A name with letters in another case and swapped for look-alikes (`B0B`,
    /// `AIice`, `ALlCE`, `8ob`, `rnary`, Cyrillic `а`) is the same person as the
    /// name it imitates, both ways round. (Not two variants with each other: `6ob`
    /// and `8ob` both pass for `bob`, but not for one another.)
    #[test]
    fn case_and_look_alike_variants_are_the_same_person(
        (base, variant) in name_and_look_alike(),
    ) {
        // Arrange
        let base = DisplayName::parse(&base).unwrap();
        let variant = DisplayName::parse(&variant).unwrap();

        // Act and assert
        prop_assert!(base.same_person_as(&variant), "{base:?} vs {variant:?}");
        prop_assert!(variant.same_person_as(&base), "{variant:?} vs {base:?}");
    }

    /// A name made only of invisible characters and whitespace is refused.
    #[test]
    fn blank_looking_names_are_refused(typed in blank_looking_text()) {
        prop_assert!(DisplayName::parse(&typed).is_err(), "{typed:?} was accepted");
    }

    /// Parsing a message never panics, and an accepted message is within the limit,
    /// has no control characters but line breaks and tabs, and parses back to itself.
    #[test]
    fn accepted_messages_are_clean_and_stable(
        typed in prop_oneof![any::<String>(), mixed_text()],
        max_chars in 1usize..64,
    ) {
        // Act
        let Ok(text) = MessageText::parse(&typed, max_chars) else {
            return Ok(());
        };

        // Assert
        let text = text.into_string();
        prop_assert!(text.chars().count() <= max_chars, "{text:?}");
        prop_assert!(
            !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{text:?}"
        );
        let again = MessageText::parse(&text, max_chars).map(MessageText::into_string);
        prop_assert_eq!(again, Ok(text));
    }

    /// A message made only of invisible characters and whitespace is refused.
    #[test]
    fn blank_looking_messages_are_refused(typed in blank_looking_text()) {
        prop_assert!(MessageText::parse(&typed, 1000).is_err(), "{typed:?} was accepted");
    }

    /// Reading a resume point never panics, whatever the header and query hold.
    #[test]
    fn resume_point_never_panics(
        header in proptest::option::of(any::<String>()),
        after in proptest::option::of(any::<String>()),
    ) {
        let _ = resume_point(header.as_deref(), after.as_deref());
    }

    /// Any whole number, with spaces around it or not, is read from either place.
    #[test]
    fn resume_point_reads_any_number(n in any::<u64>(), before in " {0,3}", after in " {0,3}") {
        // Arrange
        let typed = format!("{before}{n}{after}");

        // Act
        let from_header = resume_point(Some(&typed), None);
        let from_query = resume_point(None, Some(&typed));

        // Assert
        prop_assert_eq!(from_header, Ok(Some(n)));
        prop_assert_eq!(from_query, Ok(Some(n)));
    }

    /// The `Last-Event-ID` header wins over `?after=`, even when `after` is garbage.
    #[test]
    fn resume_point_prefers_the_header(n in any::<u64>(), after in any::<String>()) {
        prop_assert_eq!(resume_point(Some(&n.to_string()), Some(&after)), Ok(Some(n)));
    }

    /// Any id that is not a number is refused with a short sentence, however long
    /// the id was.
    #[test]
    fn resume_point_refusals_are_short(
        typed in prop_oneof![
            ("\\PC{0,20}", "[^0-9+\\s]", any::<String>())
                .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
            "[0-9]{0,5}[a-z%\"<]{1,3}[0-9a-z]{500,5000}",
            // Long runs of any characters: quoting even a short prefix of these can
            // take many bytes once escaped.
            prop::collection::vec(any::<char>(), 50..400)
                .prop_map(|chars| format!("x{}", String::from_iter(chars))),
        ],
    ) {
        // Act
        let from_header = resume_point(Some(&typed), None);
        let from_query = resume_point(None, Some(&typed));

        // Assert
        for refused in [from_header, from_query] {
            match refused {
                Err(sentence) => prop_assert!(
                    sentence.len() <= 200,
                    "{} bytes: {sentence:?}",
                    sentence.len()
                ),
                Ok(point) => prop_assert!(false, "{typed:?} was read as {point:?}"),
            }
        }
    }
}

/// No header and no query, or empty ones, mean "start from now".
#[test]
fn resume_point_without_an_id_is_none() {
    for (header, after) in [
        (None, None),
        (Some(""), None),
        (None, Some("")),
        (Some("   "), None),
        (None, Some(" \t ")),
    ] {
        assert_eq!(
            resume_point(header, after),
            Ok(None),
            "{header:?}, {after:?}"
        );
    }
}
