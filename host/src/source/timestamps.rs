//! Timestamps of CSV fields and JSON values, parsed from their text with a fast path for
//! the ISO 8601 form almost every file uses, a bare integer read as epoch milliseconds (the
//! convention of a BIGINT event time), and arrow's own parser for every other form.
//!
//! ```text
//!  "2024-01-01T00:00:01.250" ─▶ fixed-position digits ─▶ days from civil date ─▶ ms
//!   (a minute the row before had: its seconds since the epoch kept, only "01.250" read)
//!  "1704067201250", "-5" (a CSV field, a JSON number or string) ─▶ epoch milliseconds
//!  anything else ("…Z", "+02:00", a date alone, a leap second, junk) ─▶ string_to_datetime
//! ```
//! arrow-csv parses every timestamp with `string_to_datetime`, which handles time zones,
//! offsets and a dozen layouts, and was about an eighth of a whole run's CPU. The source
//! decodes such columns as text and converts them here. The fast path takes only what it
//! can compute exactly as arrow does (`YYYY-MM-DD`, `T` or a space, `hh:mm:ss`, up to nine
//! fraction digits, a valid date and time); arrow's parser reads no bare integer, which is
//! read as epoch milliseconds; for anything else the result, value or error, is arrow's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, PrimitiveArray, StringArray};
use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::{
    ArrowTimestampType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;
use chrono::Utc;

/// Converts a text column (NULL for an empty field, as arrow-csv decodes it) of column
/// `column` (its index in the source's schema, for the error) to timestamps of `unit` in
/// time zone `zone` (text without an offset is UTC time, the only zone a source declares).
/// The error is the one arrow-csv gives for the first value that does not parse.
pub(crate) fn parse_column(
    text: &StringArray,
    unit: TimeUnit,
    zone: Option<Arc<str>>,
    column: usize,
) -> Result<ArrayRef, ArrowError> {
    Ok(match unit {
        TimeUnit::Second => convert::<TimestampSecondType>(text, zone, column)?,
        TimeUnit::Millisecond => convert::<TimestampMillisecondType>(text, zone, column)?,
        TimeUnit::Microsecond => convert::<TimestampMicrosecondType>(text, zone, column)?,
        TimeUnit::Nanosecond => convert::<TimestampNanosecondType>(text, zone, column)?,
    })
}

fn convert<T: ArrowTimestampType>(
    text: &StringArray,
    zone: Option<Arc<str>>,
    column: usize,
) -> Result<ArrayRef, ArrowError> {
    // arrow-csv made every empty field NULL: those keep a 0 under the same NULL bits.
    let mut values = Vec::with_capacity(text.len());
    let mut last_minute = None;
    for row in 0..text.len() {
        values.push(match text.is_valid(row) {
            true => parse(text.value(row), T::UNIT, &mut last_minute).map_err(|e| {
                ArrowError::ParseError(format!("Error parsing column {column} at line {row}: {e}"))
            })?,
            false => 0,
        });
    }
    let parsed = PrimitiveArray::<T>::new(values.into(), text.nulls().cloned());
    Ok(Arc::new(parsed.with_timezone_opt(zone)))
}

/// The text of the last `YYYY-MM-DD[T ]hh:mm` read and its seconds since the epoch:
/// consecutive timestamps almost always share their minute, whose date and time are then
/// neither parsed nor checked again.
pub(crate) type LastMinute = Option<([u8; 16], i64)>;

/// The timestamp `text` in `unit`: a bare integer as epoch milliseconds, anything else as
/// arrow-csv reads it for a column without a time zone.
pub(crate) fn parse(
    text: &str,
    unit: TimeUnit,
    last_minute: &mut LastMinute,
) -> Result<i64, ArrowError> {
    if let Some(value) = iso(text.as_bytes(), last_minute).and_then(|(s, ns)| in_unit(s, ns, unit))
    {
        return Ok(value);
    }
    match epoch_millis(text, unit) {
        Some(read) => read,
        None => arrow_timestamp(text, unit),
    }
}

/// `text` read as epoch milliseconds in `unit`, where it is a bare integer (an optional
/// `-` and ASCII digits, nothing else); `None` for any other text.
fn epoch_millis(text: &str, unit: TimeUnit) -> Option<Result<i64, ArrowError>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text.parse::<i64>().ok().and_then(|ms| match unit {
        TimeUnit::Second => Some(ms.div_euclid(1_000)),
        TimeUnit::Millisecond => Some(ms),
        TimeUnit::Microsecond => ms.checked_mul(1_000),
        TimeUnit::Nanosecond => ms.checked_mul(1_000_000),
    });
    Some(value.ok_or_else(|| {
        ArrowError::ParseError(format!(
            "{text} epoch milliseconds are out of range for a timestamp in {}",
            unit_name(unit)
        ))
    }))
}

/// The unit in words.
fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "seconds",
        TimeUnit::Millisecond => "milliseconds",
        TimeUnit::Microsecond => "microseconds",
        TimeUnit::Nanosecond => "nanoseconds",
    }
}

/// `text` in `unit` by arrow's own parser, as arrow-csv calls it: every form it knows, and
/// its error for any other.
fn arrow_timestamp(text: &str, unit: TimeUnit) -> Result<i64, ArrowError> {
    let date = string_to_datetime(&Utc, text)?;
    match unit {
        TimeUnit::Second => Ok(date.timestamp()),
        TimeUnit::Millisecond => Ok(date.timestamp_millis()),
        TimeUnit::Microsecond => Ok(date.timestamp_micros()),
        TimeUnit::Nanosecond => date.timestamp_nanos_opt().ok_or_else(|| {
            ArrowError::ParseError(format!(
                "{} would overflow 64-bit signed nanoseconds",
                date.to_rfc3339(),
            ))
        }),
    }
}

/// Seconds since the epoch and the nanoseconds of `YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}]`, where
/// the text is exactly that and a valid date and time; `None` otherwise. A minute that is
/// `last_minute`'s is not read again; a new valid one becomes `last_minute`.
fn iso(text: &[u8], last_minute: &mut LastMinute) -> Option<(i64, u32)> {
    let (minute, rest) = text.split_at_checked(16)?;
    let minute_start = match last_minute {
        Some((seen, seconds)) if seen.as_slice() == minute => *seconds,
        _ => {
            let seconds = minute_seconds(minute)?;
            *last_minute = Some((minute.try_into().ok()?, seconds));
            seconds
        }
    };
    let [b':', s1, s2, rest @ ..] = rest else {
        return None;
    };
    let second = two_digits(*s1, *s2)?;
    if second > 59 {
        return None;
    }
    let nanos = match rest {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let fraction = digits.iter().try_fold(0u32, |n, &b| {
                let digit = b.wrapping_sub(b'0');
                (digit < 10).then(|| n * 10 + u32::from(digit))
            })?;
            fraction * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    Some((minute_start + i64::from(second), nanos))
}

/// Seconds since the epoch of `YYYY-MM-DD[T ]hh:mm`, where it is exactly that and a valid
/// date and time.
fn minute_seconds(text: &[u8]) -> Option<i64> {
    let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b'T' | b' ', h1, h2, b':', n1, n2] = text
    else {
        return None;
    };
    let year = two_digits(*y1, *y2)? * 100 + two_digits(*y3, *y4)?;
    let (month, day) = (two_digits(*m1, *m2)?, two_digits(*d1, *d2)?);
    let (hour, minute) = (two_digits(*h1, *h2)?, two_digits(*n1, *n2)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60)
}

/// The number two ASCII digits write.
fn two_digits(tens: u8, ones: u8) -> Option<u32> {
    let (tens, ones) = (tens.wrapping_sub(b'0'), ones.wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| u32::from(tens) * 10 + u32::from(ones))
}

/// `seconds` and `nanos` in `unit` (truncated, as chrono's `timestamp_millis` and
/// `timestamp_micros` are); `None` where nanoseconds overflow.
fn in_unit(seconds: i64, nanos: u32, unit: TimeUnit) -> Option<i64> {
    let nanos = i64::from(nanos);
    match unit {
        TimeUnit::Second => Some(seconds),
        TimeUnit::Millisecond => Some(seconds * 1_000 + nanos / 1_000_000),
        TimeUnit::Microsecond => Some(seconds * 1_000_000 + nanos / 1_000),
        TimeUnit::Nanosecond => seconds.checked_mul(1_000_000_000)?.checked_add(nanos),
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let march_based_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * march_based_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::SplitMix64;

    /// arrow's own reading of `text`, the oracle for the fast path.
    fn arrow_reading(text: &str, unit: TimeUnit) -> Option<i64> {
        arrow_timestamp(text, unit).ok()
    }

    const UNITS: [TimeUnit; 4] = [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ];

    #[test]
    fn random_timestamps_read_as_arrow_reads_them() {
        let mut rng = SplitMix64::new(11);
        let mut last_minute = None;
        for _ in 0..20_000 {
            let mut pick = |n: u64| rng.next_u64() % n;
            let year = pick(10_000);
            // Out-of-range fields are drawn too: they must fall back and fail as arrow does.
            let (month, day) = (pick(14), pick(33));
            let (hour, minute, second) = (pick(26), pick(62), pick(62));
            let separator = if pick(2) == 0 { 'T' } else { ' ' };
            let fraction = match pick(4) {
                0 => String::new(),
                digits => {
                    let digits = [1, 3, 9, 10][digits as usize % 4];
                    let value = pick(10u64.pow(digits.min(9)));
                    format!(".{value:0digits$}", digits = digits as usize)
                }
            };
            let suffix = ["", "", "", "Z", "+02:00", "x"][pick(6) as usize];
            let text = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{suffix}"
            );
            for unit in UNITS {
                assert_eq!(
                    parse(&text, unit, &mut last_minute).ok(),
                    arrow_reading(&text, unit),
                    "{text} in {unit:?}"
                );
            }
        }
    }

    #[test]
    fn other_layouts_and_junk_fall_back_to_arrow() {
        for text in [
            "2024-02-29T12:00:00",
            "2023-02-29T12:00:00",
            "1969-12-31T23:59:59.999",
            "0001-01-01 00:00:00",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:60",
            "2024-1-01T00:00:00",
            "yesterday",
            "2024-01-01T00:00:00.",
            "",
            "२०२४-01-01T00:00:00",
        ] {
            for unit in UNITS {
                assert_eq!(
                    parse(text, unit, &mut None).ok(),
                    arrow_reading(text, unit),
                    "{text}"
                );
            }
        }
        assert_eq!(
            parse("1970-01-01T00:00:01.5", TimeUnit::Millisecond, &mut None).ok(),
            Some(1_500)
        );
    }

    #[test]
    fn a_repeated_minute_is_read_from_the_last_one_and_its_seconds_still_checked() {
        let texts = [
            "2024-02-29T23:59:59.999",
            "2024-02-29 00:00:00",
            "2024-02-29T24:00:00",
            "2024-02-29T12:00",
            "2024-02-29T12:00:00Z",
            "2024-02-29T12:30:00.5",
            "2024-02-29T12:30:61",
            "2024-02-29T12:30:59.123456789",
            "2024-02-29T12:30:59.1234567890",
            "2024-02-29T12:30:5",
            "2024-02-29 12:30:59",
            "2023-02-29T12:00:00",
            "2024-03-01T00:00:00",
        ];
        // Each text right after each other one, so it is read with every last date.
        for first in texts {
            for text in texts {
                for unit in UNITS {
                    let mut last_minute = None;
                    let _ = parse(first, unit, &mut last_minute);
                    assert_eq!(
                        parse(text, unit, &mut last_minute).ok(),
                        arrow_reading(text, unit),
                        "{text} after {first}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_column_keeps_nulls_and_names_the_column_of_a_bad_value() {
        // arrow-csv decodes an empty field as NULL.
        let text = StringArray::from(vec![Some("1970-01-01T00:00:02"), None, None]);
        let parsed = parse_column(&text, TimeUnit::Millisecond, None, 3).expect("parses");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.null_count(), 2);
        let bad = StringArray::from(vec!["1970-01-01T00:00:02", "yesterday"]);
        let error = parse_column(&bad, TimeUnit::Second, None, 3).expect_err("a bad value");
        assert!(
            error
                .to_string()
                .contains("Error parsing column 3 at line 1"),
            "{error}"
        );
    }

    #[test]
    fn a_bare_integer_is_epoch_milliseconds_in_every_unit() {
        let read = |text: &str, unit| parse(text, unit, &mut None).ok();
        assert_eq!(
            read("1704067203000", TimeUnit::Millisecond),
            Some(1_704_067_203_000)
        );
        assert_eq!(
            read("1704067203000", TimeUnit::Nanosecond),
            Some(1_704_067_203_000_000_000)
        );
        assert_eq!(read("1704067203250", TimeUnit::Second), Some(1_704_067_203));
        assert_eq!(read("-1", TimeUnit::Second), Some(-1));
        assert_eq!(read("-1", TimeUnit::Microsecond), Some(-1_000));
        assert_eq!(read("0", TimeUnit::Nanosecond), Some(0));
        // Not bare integers: arrow's reading, an error.
        for text in ["-", "+5", "1.5", "1e3", " 5", "5 "] {
            assert_eq!(read(text, TimeUnit::Millisecond), None, "{text}");
        }
        let error = parse(&i64::MAX.to_string(), TimeUnit::Nanosecond, &mut None)
            .expect_err("out of range");
        assert!(error.to_string().contains("out of range"), "{error}");
        assert_eq!(
            read(&i64::MAX.to_string(), TimeUnit::Millisecond),
            Some(i64::MAX)
        );
    }

    #[test]
    fn a_column_with_a_zone_keeps_it() {
        let text = StringArray::from(vec![Some("1000"), Some("1970-01-01T00:00:02")]);
        let zone: Arc<str> = "+00:00".into();
        let parsed =
            parse_column(&text, TimeUnit::Millisecond, Some(zone.clone()), 0).expect("parses");
        assert_eq!(
            parsed.data_type(),
            &arrow::datatypes::DataType::Timestamp(TimeUnit::Millisecond, Some(zone))
        );
    }
}
