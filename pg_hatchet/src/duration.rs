//! Hatchet duration strings (`"30s"`, `"5m"`, `"1h30m"`, `"1.5h"`, `"150ms"`, `"2d"`), parsed strictly.
//!
//! Hatchet's own SQL helper silently turns a malformed duration into 5 minutes; a typo in a timeout should be an
//! error the caller sees, so this parser accepts only a sequence of `<number><unit>` terms and nothing else.

use crate::error::HatchetError;
use pgrx::prelude::*;

const MICROS_PER: [(&str, f64); 7] = [
    ("ms", 1_000.0),
    ("s", 1_000_000.0),
    ("m", 60.0 * 1_000_000.0),
    ("h", 3_600.0 * 1_000_000.0),
    ("d", 86_400.0 * 1_000_000.0),
    ("w", 7.0 * 86_400.0 * 1_000_000.0),
    ("y", 365.0 * 86_400.0 * 1_000_000.0),
];

/// Parse a duration into microseconds. The total must be positive and at most 100 years.
pub fn parse_micros(text: &str) -> Result<i64, HatchetError> {
    let bad = |why: &'static str| HatchetError::InvalidDuration(text.to_string(), why);
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("The duration is empty."));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(bad("Each term must start with a number."));
        }
        let number: f64 = s[start..i]
            .parse()
            .map_err(|_| bad("A term has a malformed number."))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let factor = MICROS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                if unit.is_empty() {
                    bad("A number has no unit.")
                } else {
                    bad("Unknown unit.")
                }
            })?;
        total += number * factor;
    }
    if total < 1.0 {
        return Err(bad("A duration must be positive."));
    }
    if total > 100.0 * 365.0 * 86_400.0 * 1_000_000.0 {
        return Err(bad("A duration must be at most 100 years."));
    }
    Ok(total.round() as i64)
}

/// `hatchet.parse_duration('1h30m')` → `01:30:00`. Raises 22023 on a malformed duration.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn parse_duration(text: &str) -> Interval {
    match parse_micros(text) {
        Ok(micros) => Interval::from_micros(micros),
        Err(e) => e.raise(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_micros;

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
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "abc", "10", "s", "10x", "-5s", "1h-30m", "0s", "1.2.3s", "5 m", "1000y",
        ] {
            assert!(parse_micros(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
