//! Parsing of human duration strings such as `90d`, `1h30m` or `150ms` (CLI flags like `--expires-in`).
//!
//! Accepted units: `ms`, `s`, `m`, `h`, `d`, `w`; components may be combined (`1d12h`). A bare number, an unknown
//! unit or an empty string is an error, so a typo never silently becomes "forever" or "zero".

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration \"{input}\": {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses `90d`, `1h30m`, `150ms`, ... into a [`Duration`].
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(err("missing unit (use ms, s, m, h, d or w)")),
            _ => return Err(err("unknown unit (use ms, s, m, h, d or w)")),
        };
        let millis = value
            .checked_mul(millis_per_unit)
            .ok_or_else(|| err("too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        assert_eq!(parse("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("150ms").unwrap(), Duration::from_millis(150));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse(" 10s ").unwrap(), Duration::from_secs(10));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "10",
            "d",
            "10x",
            "1h-",
            "-5s",
            "99999999999999999999s",
            "1.5h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
