//! Characters that show nothing (or only steer how their neighbours show).
//!
//! No crate we use exposes the general category or the `Default_Ignorable_Code_Point`
//! property (`unicode-security` keeps its copy private), so the ranges are written
//! out here, from the Unicode 15.1 Character Database:
//! - general category `Cf` (format), from `UnicodeData.txt`;
//! - `Default_Ignorable_Code_Point`, from `DerivedCoreProperties.txt` (this adds the
//!   fillers, variation selectors and code points reserved as ignorable);
//! - U+2800 BRAILLE PATTERN BLANK, which is neither but renders as an empty cell and
//!   is the usual way to fake a blank name.

/// Inclusive ranges, sorted and not overlapping, so a binary search finds them.
const RANGES: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // Cf: soft hyphen
    ('\u{034F}', '\u{034F}'),   // DI: combining grapheme joiner
    ('\u{0600}', '\u{0605}'),   // Cf: Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Cf: Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Cf: Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Cf: Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Cf: Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Cf: Arabic disputed end of ayah
    ('\u{115F}', '\u{1160}'),   // DI: Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // DI: Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // DI: Mongolian variation selectors; Cf: vowel separator
    ('\u{200B}', '\u{200F}'),   // Cf: zero-width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // Cf: bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // Cf: word joiner, invisible operators, isolates (DI: U+2065)
    ('\u{2800}', '\u{2800}'),   // braille pattern blank
    ('\u{3164}', '\u{3164}'),   // DI: Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // DI: variation selectors 1–16
    ('\u{FEFF}', '\u{FEFF}'),   // Cf: byte order mark, zero-width no-break space
    ('\u{FFA0}', '\u{FFA0}'),   // DI: half-width Hangul filler
    ('\u{FFF0}', '\u{FFFB}'),   // DI: reserved; Cf: interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Cf: Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Cf: Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Cf: Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // Cf: shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // Cf: musical symbol beam and slur controls
    ('\u{E0000}', '\u{E0FFF}'), // DI: tags (Cf) and variation selectors 17–256
];

/// Whether `c` is a format character, a default-ignorable one or the braille blank.
pub(super) fn is_invisible(c: char) -> bool {
    RANGES
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Every invisible character, for tests that try them all.
#[cfg(test)]
pub(super) fn all() -> impl Iterator<Item = char> {
    RANGES.iter().flat_map(|&(low, high)| low..=high)
}
