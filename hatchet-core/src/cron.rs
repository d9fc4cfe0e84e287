//! Cron expressions for workflow crons (crate `cron`), always in UTC.
//!
//! Hatchet accepts standard 5-field expressions (`minute hour day-of-month month day-of-week`) and 6-field ones with
//! a seconds field first, plus the `@hourly`-style shorthands. The `cron` crate wants 6 or 7 fields and numbers days
//! of the week 1–7 from Sunday, where standard cron numbers them 0–6 from Sunday (7 also meaning Sunday). So an
//! expression is normalised before it is parsed: a 5-field one gets a `0` seconds field, and numeric days of the week
//! are rewritten to the crate's numbering. `1-5` keeps meaning Monday to Friday.

use chrono::{DateTime, Utc};
use std::str::FromStr;

pub use cron::Schedule;

/// What to tell someone who wrote a malformed cron expression.
pub const SYNTAX_HINT: &str =
    "Use 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, \
                               in UTC, for example \"*/5 * * * *\" or \"*/10 * * * * *\".";

/// Why a cron expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression \"{expression}\": {reason}")]
pub struct CronError {
    expression: String,
    reason: String,
}

impl CronError {
    /// The expression as the caller wrote it.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// What is wrong with it, e.g. `"Expected 5 fields, or 6 with seconds first, but found 3."`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Parse a Hatchet cron expression (5 or 6 fields, or a shorthand such as `@daily`).
pub fn parse(expression: &str) -> Result<Schedule, CronError> {
    let bad = |reason: String| CronError {
        expression: expression.to_string(),
        reason,
    };
    let normalised = normalise(expression).map_err(bad)?;
    Schedule::from_str(&normalised).map_err(|e| bad(format!("{e}")))
}

/// The crate's form of an expression: 6 fields, days of the week numbered 1 (Sunday) to 7 (Saturday).
pub fn normalise(expression: &str) -> Result<String, String> {
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        return Ok(trimmed.to_string());
    }
    let mut fields: Vec<String> = trimmed.split_whitespace().map(str::to_string).collect();
    match fields.len() {
        5 => fields.insert(0, "0".to_string()),
        6 => {}
        0 => return Err("The expression is empty.".to_string()),
        n => {
            return Err(format!(
                "Expected 5 fields, or 6 with seconds first, but found {n}."
            ))
        }
    }
    fields[5] = day_of_week(&fields[5])?;
    Ok(fields.join(" "))
}

/// Rewrite a standard day-of-week field (0–7, Sunday = 0 or 7) in the crate's numbering (1–7, Sunday = 1).
///
/// `*` and `*/n` mean the same days in both numberings, and names (`MON-FRI`) are understood by the crate, so only
/// numeric items change: each is expanded to its set of days and written as a list.
fn day_of_week(field: &str) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) if numeric(a) && numeric(b) => (a, b),
            None if numeric(range) => (range, if step.is_some() { "6" } else { range }),
            // `*`, `?`, names and anything malformed: the crate accepts or rejects it as it is.
            _ => {
                out.push(item.to_string());
                continue;
            }
        };
        let parse_day = |s: &str| -> Result<u32, String> {
            let d: u32 = s
                .parse()
                .map_err(|_| format!("Day of week \"{s}\" is not a number."))?;
            if d > 7 {
                return Err(format!(
                    "Day of week {d} is out of range (0-7, Sunday is 0 or 7)."
                ));
            }
            Ok(d)
        };
        let (lo, hi) = (parse_day(lo)?, parse_day(hi)?);
        if lo > hi {
            return Err(format!("Day of week range {lo}-{hi} is backwards."));
        }
        let step = match step {
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("Day of week step \"{s}\" is not a positive number."))?,
            None => 1,
        };
        let mut day = lo;
        while day <= hi {
            // standard 0..6 = Sunday..Saturday, 7 = Sunday; the crate's 1..7 = Sunday..Saturday
            out.push(((day % 7) + 1).to_string());
            day += step;
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut deduped = Vec::new();
    for item in out {
        if seen.insert(item.clone()) {
            deduped.push(item);
        }
    }
    Ok(deduped.join(","))
}

/// The first tick strictly after `after`, or None if the expression never fires again (e.g. February 30th).
pub fn next_after(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&after).next()
}

/// The first `n` ticks strictly after `after`, in order (fewer if the expression stops firing).
pub fn ticks_after(schedule: &Schedule, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    schedule.after(&after).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: expression, start, expected ticks after it.
    fn assert_ticks(cases: &[(&str, &str, &[&str])]) {
        for (expr, from, expected) in cases {
            let s = parse(expr).expect("valid");
            let from: DateTime<Utc> = from.parse().unwrap();
            let got: Vec<String> = ticks_after(&s, from, expected.len())
                .iter()
                .map(|t| t.format("%a %Y-%m-%d %H:%M:%S").to_string())
                .collect();
            assert_eq!(got, *expected, "{expr:?} after {from}");
        }
    }

    #[test]
    fn five_fields_get_a_zero_seconds_field() {
        assert_eq!(normalise("*/15 * * * *").unwrap(), "0 */15 * * * *");
        assert_ticks(&[(
            "*/15 * * * *",
            "2025-01-01T00:00:00Z",
            &["Wed 2025-01-01 00:15:00", "Wed 2025-01-01 00:30:00"],
        )]);
    }

    #[test]
    fn six_fields_have_seconds_first() {
        assert_ticks(&[(
            "*/10 * * * * *",
            "2025-01-01T00:00:00Z",
            &["Wed 2025-01-01 00:00:10", "Wed 2025-01-01 00:00:20"],
        )]);
    }

    #[test]
    fn days_of_week_use_standard_numbering() {
        // 2025-01-04 is a Saturday
        let sat = "2025-01-04T00:00:00Z";
        assert_ticks(&[
            (
                "0 9 * * 1-5",
                sat,
                &["Mon 2025-01-06 09:00:00", "Tue 2025-01-07 09:00:00"],
            ),
            ("0 9 * * 0", sat, &["Sun 2025-01-05 09:00:00"]),
            ("0 9 * * 7", sat, &["Sun 2025-01-05 09:00:00"]),
            (
                "0 9 * * 5-7",
                sat,
                &["Sat 2025-01-04 09:00:00", "Sun 2025-01-05 09:00:00"],
            ),
            ("0 9 * * MON", sat, &["Mon 2025-01-06 09:00:00"]),
            (
                "0 9 * * 1/2",
                sat,
                &[
                    "Mon 2025-01-06 09:00:00",
                    "Wed 2025-01-08 09:00:00",
                    "Fri 2025-01-10 09:00:00",
                ],
            ),
            (
                "0 9 * * */3",
                sat,
                &[
                    "Sat 2025-01-04 09:00:00",
                    "Sun 2025-01-05 09:00:00",
                    "Wed 2025-01-08 09:00:00",
                ],
            ),
        ]);
    }

    #[test]
    fn shorthands() {
        assert_ticks(&[(
            "@hourly",
            "2025-01-01T00:30:00Z",
            &["Wed 2025-01-01 01:00:00"],
        )]);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "* * *",
            "* * * * * * * *",
            "61 * * * *",
            "* * * * 8",
            "* * * * 5-2",
            "abc * * * *",
            "* * 32 * *",
            "*/0 * * * *",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse("* * *").unwrap_err();
        assert_eq!(e.expression(), "* * *");
        assert_eq!(
            e.reason(),
            "Expected 5 fields, or 6 with seconds first, but found 3."
        );
    }

    #[test]
    fn impossible_dates_have_no_next_tick() {
        let s = parse("0 0 30 2 *").unwrap();
        let from = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(next_after(&s, from), None);
        assert!(ticks_after(&s, from, 3).is_empty());
    }
}
