//! Web links in message text: which parts of a message are `http://` and
//! `https://` addresses, so that the room page can show them as links.
//!
//! The text is split into segments, each plain text or a link; the view renders
//! each segment through Handlebars' escaping, so a message is never read as HTML
//! and nothing but an address starting with `http://` or `https://` ever becomes
//! an `href`. `assets/chat.js` (`withLinks`) applies the same rule to live
//! messages, so a message looks the same before and after a reload:
//! - a link starts with `http://` or `https://`, at the start of the text or
//!   after a character that is neither a letter nor a digit (`(https://…` is
//!   a link, `xhttps://…` is not), and runs to the next whitespace;
//! - punctuation that usually ends a sentence (`.,;:!?'"`) at its end is left
//!   outside, and so is a `)` without an opening `(` in the link (`(see
//!   https://a.example/x)`), while `https://en.wikipedia.org/wiki/Rust_(game)`
//!   keeps its own;
//! - an address with nothing after the `//` once trimmed is text.

use serde::Serialize;

/// One piece of a message: plain text, or a link whose address is its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment<'a> {
    pub text: &'a str,
    /// The text is an `http(s)://` address, shown as a link to itself.
    pub link: bool,
}

const SCHEMES: [&str; 2] = ["https://", "http://"];

/// Left outside a link when it ends it: sentence punctuation and quotes.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', '"'];

/// Where a link's run of characters ends. U+FEFF counts as a space because the
/// browser's `\s` does; the server refuses the other characters the two differ on
/// (they are control characters).
fn ends_link(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

/// `text` as plain-text and link segments, in order; together they are `text`.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut plain_from = 0;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let after_boundary = text[..at]
            .chars()
            .next_back()
            .is_none_or(|before| !before.is_alphanumeric());
        let scheme = SCHEMES.iter().find(|s| rest.starts_with(*s));
        if let (true, Some(scheme)) = (after_boundary, scheme) {
            let run = rest.find(ends_link).unwrap_or(rest.len());
            let link = trim_link(&rest[..run]);
            if link.len() > scheme.len() {
                if plain_from < at {
                    segments.push(Segment {
                        text: &text[plain_from..at],
                        link: false,
                    });
                }
                segments.push(Segment {
                    text: link,
                    link: true,
                });
                at += link.len();
                plain_from = at;
                continue;
            }
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain_from < text.len() {
        segments.push(Segment {
            text: &text[plain_from..],
            link: false,
        });
    }
    segments
}

/// The link without what ends the sentence around it.
fn trim_link(mut link: &str) -> &str {
    loop {
        if let Some(shorter) = link.strip_suffix(TRAILING) {
            link = shorter;
        } else if link.ends_with(')') && link.matches(')').count() > link.matches('(').count() {
            link = &link[..link.len() - 1];
        } else {
            return link;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segments as `[text]` for plain text and `<link>` for links.
    fn shown(text: &str) -> String {
        segments(text)
            .iter()
            .map(|s| match s.link {
                true => format!("<{}>", s.text),
                false => format!("[{}]", s.text),
            })
            .collect()
    }

    #[test]
    fn addresses_become_links_and_the_rest_stays_text() {
        let cases = [
            ("no link here", "[no link here]"),
            ("https://a.example", "<https://a.example>"),
            (
                "see http://a.example/x?y=1#z now",
                "[see ]<http://a.example/x?y=1#z>[ now]",
            ),
            (
                "two: https://a.example\nhttps://b.example",
                "[two: ]<https://a.example>[\n]<https://b.example>",
            ),
            (
                "Look at https://a.example.",
                "[Look at ]<https://a.example>[.]",
            ),
            (
                "really?! https://a.example/?!",
                "[really?! ]<https://a.example/>[?!]",
            ),
            ("\"https://a.example\"", "[\"]<https://a.example>[\"]"),
            (
                "(see https://a.example/x)",
                "[(see ]<https://a.example/x>[)]",
            ),
            (
                "https://en.wikipedia.org/wiki/Rust_(game)",
                "<https://en.wikipedia.org/wiki/Rust_(game)>",
            ),
            (
                "(https://w.example/A_(b)).",
                "[(]<https://w.example/A_(b)>[).]",
            ),
            (
                "https://a.example\u{FEFF}x",
                "<https://a.example>[\u{FEFF}x]",
            ),
            ("名前https://a.example", "[名前https://a.example]"),
            ("«https://a.example»", "[«]<https://a.example»>"),
        ];
        for (text, expected) in cases {
            assert_eq!(shown(text), expected, "{text:?}");
        }
    }

    #[test]
    fn nothing_but_http_and_https_becomes_a_link() {
        let cases = [
            ("javascript:alert(1)", "[javascript:alert(1)]"),
            (
                "<b>x</b> <a href=\"https://a.example\">",
                "[<b>x</b> <a href=\"]<https://a.example\">>",
            ),
            (
                "ftp://a.example www.a.example",
                "[ftp://a.example www.a.example]",
            ),
            ("xhttps://a.example", "[xhttps://a.example]"),
            ("HTTPS://a.example", "[HTTPS://a.example]"),
            (
                "https:// and http://. and https://)",
                "[https:// and http://. and https://)]",
            ),
            (
                "data:text/html,https://a.example",
                "[data:text/html,]<https://a.example>",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(shown(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_segments_put_together_are_the_text() {
        for text in ["", "a", "é https://x.example/é. ß", "https://x.example)))"] {
            let joined: String = segments(text).iter().map(|s| s.text).collect();
            assert_eq!(joined, text);
        }
    }
}
