//! How the UI writes times, durations, sizes, JSON and query strings.

use chrono::{TimeZone, Utc};
use serde_json::Value;

/// A time (ms since epoch) as `2026-12-01 16:45:03` (UTC).
pub fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A time as RFC 3339 (for `<time datetime>`).
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A duration in ms, short: `850 ms`, `4.2 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        3_600_000..86_400_000 => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
        _ => format!("{} d {} h", ms / 86_400_000, ms % 86_400_000 / 3_600_000),
    }
}

/// A duration in µs: `84 µs`, `1.3 ms`, then as [`duration_ms`].
pub fn duration_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..100_000 => format!("{:.1} ms", us as f64 / 1000.0),
        _ => duration_ms((us / 1000) as i64),
    }
}

/// A size in bytes: `512 B`, `64 KiB`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{} KiB", n / 1024),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// A count with thousands separated: `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// JSON, indented.
pub fn json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `url` with `rest` (`k=v&…`) added to its query string.
pub fn and_query(url: &str, rest: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{rest}")
}

/// A query parameter's value, unless it is absent or empty (as a form sends it).
pub fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// A query string from the pairs whose value is set: `?a=1&b=x`, or empty.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", url_encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(4_200), "4.2 s");
        assert_eq!(duration_ms(200_000), "3 min 20 s");
        assert_eq!(duration_us(84), "84 µs");
        assert_eq!(duration_us(1_300), "1.3 ms");
        assert_eq!(bytes(65_536), "64 KiB");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(time(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn queries_keep_only_set_values_and_encode_them() {
        assert_eq!(
            query(&[
                ("function", Some("a b")),
                ("status", None),
                ("user", Some(""))
            ]),
            "?function=a%20b"
        );
        assert_eq!(query(&[("x", None)]), "");
        assert_eq!(and_query("/runs", "part=rows"), "/runs?part=rows");
        assert_eq!(and_query("/runs?a=1", "part=rows"), "/runs?a=1&part=rows");
        assert_eq!(url_encode("/runs?x=1&y"), "%2Fruns%3Fx%3D1%26y");
    }
}
