//! `duration('1h30m')` parsing and `string(duration)` formatting, as cel-interpreter 0.10
//! does them (its grammar, including that text after the last unit is ignored).

use chrono::TimeDelta;
use nom::branch::alt;
use nom::bytes::complete::tag;
use nom::character::complete::char;
use nom::combinator::{map, opt};
use nom::multi::many1;
use nom::number::complete::double;
use nom::IResult;

const SECOND: u64 = 1_000_000_000;

/// Parses `-?(<number><unit>)+` with units `h m s ms us ns`, or `0`.
pub(crate) fn parse(s: &str) -> Result<TimeDelta, String> {
    let bad = |e: String| format!("Error executing function 'duration': {e}");
    let (rest, neg) =
        opt(char::<&str, nom::error::Error<&str>>('-'))(s).map_err(|e| bad(e.to_string()))?;
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    let (_, parts) = many1(number_unit)(rest).map_err(|e| bad(e.to_string()))?;
    let mut total = TimeDelta::zero();
    for p in parts {
        total = total
            .checked_add(&p)
            .ok_or_else(|| bad("the duration overflows".into()))?;
    }
    if neg.is_some() {
        total = TimeDelta::zero()
            .checked_sub(&total)
            .ok_or_else(|| bad("the duration overflows".into()))?;
    }
    Ok(total)
}

fn number_unit(i: &str) -> IResult<&str, TimeDelta> {
    let (i, num) = double(i)?;
    let (i, nanos) = alt((
        map(tag("ms"), |_| 1_000_000i64),
        map(tag("us"), |_| 1_000),
        map(tag("ns"), |_| 1),
        map(char('h'), |_| 3_600_000_000_000),
        map(char('m'), |_| 60_000_000_000),
        map(char('s'), |_| 1_000_000_000),
    ))(i)?;
    // A float-to-int `as` saturates, as in cel-interpreter.
    Ok((
        i,
        TimeDelta::nanoseconds((num * nanos as f64).trunc() as i64),
    ))
}

/// Formats like Go's `time.Duration.String` ("72h3m0.5s"), as cel-interpreter's port
/// does: its magnitude is the nanosecond count reinterpreted as unsigned, so negative
/// durations print as cel-interpreter prints them.
pub(crate) fn format(d: &TimeDelta) -> String {
    let (neg, u) = match d.num_nanoseconds() {
        Some(n) => (n < 0, n as u64),
        None => {
            let s = d.num_seconds();
            (s < 0, (s as u64).wrapping_mul(SECOND))
        }
    };
    let mut out = String::new();
    if u < SECOND {
        let (prec, unit) = match u {
            0 => return "0s".into(),
            u if u < 1_000 => (0, "ns"),
            u if u < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (frac, whole) = fraction(u, prec);
        out.push_str(&whole.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = fraction(u, 9);
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if secs >= 60 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{frac}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// The `prec` low decimal digits of `v` as a fraction without trailing zeros (".5"),
/// and `v` with them removed.
fn fraction(mut v: u64, prec: u32) -> (String, u64) {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let d = (v % 10) as u8;
        print = print || d != 0;
        if print {
            digits.push(b'0' + d);
        }
        v /= 10;
    }
    if !print {
        return (String::new(), v);
    }
    digits.push(b'.');
    digits.reverse();
    (String::from_utf8(digits).unwrap_or_default(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_like_go() {
        let d = parse("1h30m1.5s").unwrap();
        assert_eq!(d, TimeDelta::milliseconds(5_401_500));
        assert_eq!(format(&d), "1h30m1.5s");
        assert_eq!(format(&parse("1.5ms").unwrap()), "1.5ms");
        assert_eq!(format(&parse("2us").unwrap()), "2µs");
        assert_eq!(format(&parse("0").unwrap()), "0s");
        assert_eq!(format(&parse("90s").unwrap()), "1m30s");
        assert_eq!(format(&parse("3h").unwrap()), "3h0m0s");
        assert_eq!(parse("-1h").unwrap(), TimeDelta::hours(-1));
        assert!(parse("").is_err() && parse("h").is_err());
        assert_eq!(parse("1hxyz").unwrap(), TimeDelta::hours(1));
    }
}
