//! Content codings: which of the copies we keep of a file (brotli, gzip, or
//! as it is) a client's `Accept-Encoding` asks for (RFC 9110 §12.5.3).
//!
//! Only complete files already compressed are offered this way (the assets,
//! compressed at build): nothing is compressed per request, and event streams
//! and long polls are never compressed at all (a proxy that sees a compressed
//! stream may hold it back until it ends).

/// A content coding we can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` value, none for the identity.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Coding::Brotli => &["br"],
            // "x-gzip" is the same coding (RFC 9110 §8.4.1.3).
            Coding::Gzip => &["gzip", "x-gzip"],
            Coding::Identity => &["identity"],
        }
    }
}

/// Of the codings `available` (best first, identity implied), the one
/// `accept_encoding` prefers: the highest `q` wins, ties go to the earlier
/// in `available`, a coding at `q=0` is never chosen, and neither is one not
/// named (unless by `*`). With no header, or nothing acceptable, the file as
/// it is: a client that refuses even that gets it anyway, which RFC 9110
/// allows rather than an error page it could not read either.
pub fn negotiate(accept_encoding: Option<&str>, available: &[Coding]) -> Coding {
    let Some(accept) = accept_encoding else {
        return Coding::Identity;
    };
    let weights: Vec<(&str, f32)> = accept.split(',').filter_map(weighted).collect();
    let weight_of = |coding: Coding| -> f32 {
        let named = weights
            .iter()
            .find(|(name, _)| coding.names().iter().any(|n| name.eq_ignore_ascii_case(n)));
        let any = weights.iter().find(|(name, _)| *name == "*");
        match (named, any, coding) {
            (Some((_, q)), _, _) => *q,
            (None, Some((_, q)), _) => *q,
            // Identity is acceptable unless refused, but below anything named.
            (None, None, Coding::Identity) => f32::MIN_POSITIVE,
            (None, None, _) => 0.0,
        }
    };
    let mut best = (Coding::Identity, 0.0_f32);
    for &coding in available.iter().chain([&Coding::Identity]) {
        let q = weight_of(coding);
        if q > best.1 {
            best = (coding, q);
        }
    }
    best.0
}

/// One `coding;q=0.5` element: its name and weight (1 when not given). An
/// element whose weight cannot be read counts as not said.
fn weighted(element: &str) -> Option<(&str, f32)> {
    let mut parts = element.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() {
        return None;
    }
    let mut q = 1.0;
    for parameter in parts {
        let (key, value) = parameter.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((name, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    #[test]
    fn the_best_accepted_coding_is_chosen() {
        let cases = [
            (None, Coding::Identity),
            (Some(""), Coding::Identity),
            (Some("gzip, deflate, br, zstd"), Coding::Brotli),
            (Some("gzip, deflate"), Coding::Gzip),
            (Some("x-gzip"), Coding::Gzip),
            (Some("GZIP"), Coding::Gzip),
            (Some("br;q=0.5, gzip"), Coding::Gzip),
            (Some("br;q=0, gzip;q=0.1"), Coding::Gzip),
            (Some("br;q=0, gzip;q=0"), Coding::Identity),
            (Some("*"), Coding::Brotli),
            (Some("*;q=0.5, br;q=0"), Coding::Gzip),
            (Some("identity"), Coding::Identity),
            (Some("identity, gzip;q=0.5"), Coding::Identity),
            (Some("deflate, zstd"), Coding::Identity),
            (Some("gzip;q=abc, br;q=2"), Coding::Identity),
            (Some("gzip ; q=0.8 , br ; q=0.7"), Coding::Gzip),
            // Nothing acceptable: the file as it is, all the same.
            (Some("identity;q=0"), Coding::Identity),
        ];
        for (accept, wanted) in cases {
            assert_eq!(negotiate(accept, &ALL), wanted, "{accept:?}");
        }
    }

    #[test]
    fn only_the_copies_we_have_are_offered() {
        assert_eq!(negotiate(Some("br, gzip"), &[Coding::Gzip]), Coding::Gzip);
        assert_eq!(negotiate(Some("br"), &[Coding::Gzip]), Coding::Identity);
        assert_eq!(negotiate(Some("br, gzip"), &[]), Coding::Identity);
    }
}
