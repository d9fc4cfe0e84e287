//! Hatchet duration strings (`"30s"`, `"5m"`, `"1h30m"`, `"1.5h"`, `"150ms"`, `"2d"`), parsed strictly.
//!
//! One grammar for the extension and the server: a sequence of one or more `<number><unit>` terms and nothing else
//! (surrounding whitespace aside). A number is digits with an optional decimal point; the units are `ms`, `s`, `m`,
//! `h`, `d`, `w` (7 days) and `y` (365 days); terms add up (`1m30s500ms`). Hatchet's own SQL helper silently turns a
//! malformed duration into 5 minutes; a typo in a timeout should be an error the caller sees, so a bare number, an
//! unknown unit, a sign or a space between terms is rejected.
//!
//! [`parse_micros`] and [`parse`] also check the range every duration of a task, rate limit or condition must fall
//! in: positive and at most 100 years. [`parse_unbounded`] checks the grammar only.

use std::time::Duration;

/// What to tell someone who wrote a malformed duration.
pub const SYNTAX_HINT: &str =
    "Use a number followed by a unit (ms, s, m, h, d, w), for example \"30s\", \"5m\" or \"1h30m\".";

/// Microseconds per unit.
const MICROS_PER: [(&str, i64); 7] = [
    ("ms", 1_000),
    ("s", 1_000_000),
    ("m", 60 * 1_000_000),
    ("h", 3_600 * 1_000_000),
    ("d", 86_400 * 1_000_000),
    ("w", 7 * 86_400 * 1_000_000),
    ("y", 365 * 86_400 * 1_000_000),
];

/// The longest duration [`parse_micros`] accepts: 100 years of 365 days, in microseconds.
pub const MAX_MICROS: i64 = 100 * 365 * 86_400 * 1_000_000;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration \"{input}\": {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl DurationError {
    fn new(input: &str, reason: &'static str) -> Self {
        DurationError {
            input: input.to_string(),
            reason,
        }
    }

    /// The string as the caller wrote it.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// One sentence saying what is wrong, e.g. `"A number has no unit."`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// One `<number><unit>` term of a duration.
struct Term<'a> {
    /// The number as written: digits with an optional decimal point.
    digits: &'a str,
    /// The number's value.
    value: f64,
    /// The unit's length in microseconds.
    unit_micros: i64,
}

/// Split a duration into its terms; this is the grammar.
fn terms(text: &str) -> Result<Vec<Term<'_>>, DurationError> {
    let bad = |why| DurationError::new(text, why);
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("The duration is empty."));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut terms = Vec::new();
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(bad("Each term must start with a number."));
        }
        let digits = &s[start..i];
        let value: f64 = digits
            .parse()
            .map_err(|_| bad("A term has a malformed number."))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let unit_micros = MICROS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, micros)| *micros)
            .ok_or_else(|| {
                if unit.is_empty() {
                    bad("A number has no unit.")
                } else {
                    bad("Unknown unit.")
                }
            })?;
        terms.push(Term {
            digits,
            value,
            unit_micros,
        });
    }
    Ok(terms)
}

/// The sum of the terms in microseconds, unrounded, computed in `f64` (exact for whole numbers of microseconds up
/// to 2^53, about 285 years, so for everything [`parse_micros`] accepts that has no decimal point).
fn sum_micros(text: &str) -> Result<f64, DurationError> {
    Ok(terms(text)?
        .iter()
        .fold(0.0, |total, t| total + t.value * t.unit_micros as f64))
}

/// Parse a duration into whole microseconds (rounded to the nearest). The total must be positive (at least one
/// microsecond) and at most [`MAX_MICROS`] (100 years).
pub fn parse_micros(text: &str) -> Result<i64, DurationError> {
    let total = sum_micros(text)?;
    if total < 1.0 {
        return Err(DurationError::new(text, "A duration must be positive."));
    }
    if total > MAX_MICROS as f64 {
        return Err(DurationError::new(
            text,
            "A duration must be at most 100 years.",
        ));
    }
    Ok(total.round() as i64)
}

/// [`parse_micros`] as a [`Duration`]: the same grammar and the same range (positive, at most 100 years).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    // parse_micros never returns a negative number
    parse_micros(text).map(|micros| Duration::from_micros(micros.unsigned_abs()))
}

/// The grammar of [`parse`] without its range: zero is accepted, and so is anything longer than 100 years that a
/// signed 64-bit count of microseconds holds (about 292,000 years). For settings where zero means something, or
/// where a caller may want "practically forever". Terms without a decimal point are added exactly; the others are
/// rounded to the microsecond as in [`parse_micros`].
pub fn parse_unbounded(text: &str) -> Result<Duration, DurationError> {
    let too_long = || DurationError::new(text, "The duration is too long.");
    let mut whole: i128 = 0;
    let mut fractional = 0f64;
    for term in terms(text)? {
        if term.digits.contains('.') {
            fractional += term.value * term.unit_micros as f64;
        } else {
            let n: i128 = term.digits.parse().map_err(|_| too_long())?;
            whole = n
                .checked_mul(i128::from(term.unit_micros))
                .and_then(|micros| whole.checked_add(micros))
                .ok_or_else(too_long)?;
        }
    }
    if fractional >= i64::MAX as f64 {
        return Err(too_long());
    }
    // both parts are sums of non-negative terms
    let total = whole + fractional.round() as i128;
    u64::try_from(total)
        .ok()
        .filter(|micros| *micros <= i64::MAX as u64)
        .map(Duration::from_micros)
        .ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hatchet_formats() {
        assert_eq!(parse_micros("30s"), Ok(30_000_000));
        assert_eq!(parse_micros("5m"), Ok(300_000_000));
        assert_eq!(parse_micros("1h30m"), Ok(5_400_000_000));
        assert_eq!(parse_micros("1.5h"), Ok(5_400_000_000));
        assert_eq!(parse_micros("150ms"), Ok(150_000));
        assert_eq!(parse_micros("2d"), Ok(172_800_000_000));
        assert_eq!(parse_micros(" 10s "), Ok(10_000_000));
        assert_eq!(parse_micros("1m30s500ms"), Ok(90_500_000));
        assert_eq!(parse_micros("2w"), Ok(14 * 86_400_000_000));
        assert_eq!(parse_micros("1y"), Ok(365 * 86_400_000_000));
        assert_eq!(parse_micros("100y"), Ok(MAX_MICROS));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "abc",
            "10",
            "s",
            "d",
            "10x",
            "-5s",
            "1h-30m",
            "1h-",
            "0s",
            "1.2.3s",
            "5 m",
            "1000y",
            "100y1ms",
            "99999999999999999999s",
        ] {
            assert!(parse_micros(bad).is_err(), "{bad:?} should be rejected");
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_say_why() {
        let e = parse_micros("10").unwrap_err();
        assert_eq!(e.input(), "10");
        assert_eq!(e.reason(), "A number has no unit.");
        assert_eq!(
            e.to_string(),
            "invalid duration \"10\": A number has no unit."
        );
        assert_eq!(parse_micros("10x").unwrap_err().reason(), "Unknown unit.");
        assert_eq!(
            parse_micros("0ms").unwrap_err().reason(),
            "A duration must be positive."
        );
    }

    #[test]
    fn parse_is_parse_micros_as_a_duration() {
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1_500)));
    }

    /// Everything the server's former integer-only parser (`ms s m h d w`, any total) accepted, with the same value.
    #[test]
    fn unbounded_accepts_zero_and_long_durations() {
        assert_eq!(parse_unbounded("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_unbounded("0ms0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_unbounded("10000w"),
            Ok(Duration::from_secs(10_000 * 7 * 86_400))
        );
        assert_eq!(
            parse_unbounded("1d12h"),
            Ok(Duration::from_secs(36 * 3_600))
        );
        for bad in ["", "10", "d", "10x", "1h-", "-5s", "99999999999999999999s"] {
            assert!(parse_unbounded(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
