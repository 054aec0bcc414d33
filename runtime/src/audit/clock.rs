//! The time of an audit event, as `time`'s RFC 3339 writes it in UTC
//! (`2026-12-07T19:20:31.5Z`: nanoseconds without trailing zeros, no
//! fraction at all when they are zero). Every statement's event carries
//! one, and formatting the whole date each time was a measurable part of
//! an event's cost; the date and time of day change once a second, so
//! each thread formats them once per second and an event writes only its
//! fraction. Written by hand because `time` formats whole values only.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS`.
type Second = [u8; 19];

/// The current time.
pub(super) fn now() -> String {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => match i64::try_from(since.as_secs()) {
            Ok(secs) => at(secs, since.subsec_nanos()),
            Err(_) => whole(time::OffsetDateTime::now_utc()),
        },
        // A clock before 1970: as `time` writes it (whatever it is).
        Err(_) => whole(time::OffsetDateTime::now_utc()),
    }
}

/// The time `secs` seconds and `nanos` nanoseconds after the Unix epoch.
fn at(secs: i64, nanos: u32) -> String {
    thread_local! {
        static LAST: Cell<Option<(i64, Second)>> = const { Cell::new(None) };
    }
    let second = match LAST.get() {
        Some((s, text)) if s == secs => Some(text),
        _ => {
            let text = second(secs);
            if let Some(text) = text {
                LAST.set(Some((secs, text)));
            }
            text
        }
    };
    let Some(second) = second else {
        // Outside years 0–9999 RFC 3339 has no form: `time` writes nothing.
        return String::new();
    };
    // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` at the longest.
    let mut out = [0u8; 31];
    out[..19].copy_from_slice(&second);
    let mut len = 19;
    if nanos != 0 {
        let (mut n, mut width) = (nanos, 9);
        while n % 10 == 0 {
            n /= 10;
            width -= 1;
        }
        out[19] = b'.';
        for d in out[20..20 + width].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        len = 20 + width;
    }
    out[len] = b'Z';
    // ASCII digits and separators only, so always UTF-8.
    std::str::from_utf8(&out[..=len])
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS` of second `secs`, or `None` outside years 0–9999
/// (which RFC 3339 cannot write).
fn second(secs: i64) -> Option<Second> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for d in out[at..at + width].iter_mut().rev() {
            *d = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    Some(out)
}

/// `t` as `time` writes RFC 3339.
fn whole(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what `time` writes, across days, months, leap years,
    /// fractions with and without trailing zeros, and the same second
    /// twice (the cached date) after another.
    #[test]
    fn the_time_is_written_as_time_writes_rfc_3339() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut cases = vec![
            (0, 0),
            (0, 1),
            (951_782_400, 500_000_000), // 2000-02-29
            (1_796_667_457, 120_000),
            (1_796_667_457, 123_456_789),
            (253_402_300_799, 999_999_999), // 9999-12-31T23:59:59
            (-62_167_219_200, 10),          // 0000-01-01
        ];
        for _ in 0..2000 {
            let secs = (next() % 4_000_000_000) as i64;
            let nanos = match next() % 4 {
                0 => 0,
                1 => (next() % 1000) as u32 * 1_000_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            cases.push((secs, nanos));
            cases.push((secs, nanos / 2));
        }
        for (secs, nanos) in cases {
            let t = time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .replace_nanosecond(nanos)
                .unwrap();
            assert_eq!(at(secs, nanos), whole(t), "{secs} {nanos}");
        }
        // Beyond year 9999, `time` writes nothing, and so does this.
        assert_eq!(at(253_402_300_800, 5), "");
    }
}
