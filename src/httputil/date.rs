//! HTTP dates (RFC 9110 §5.6.7): formatting for `Date`, `Expires` and
//! `Last-Modified`, parsing for `If-Modified-Since`, and a [`DateCache`] so
//! a busy server formats the `Date` header once per second, not once per
//! response. Mirrors `format_timestamp` in Tornado's `httputil.py` (Tornado
//! parses with `email.utils.parsedate_tz`); the calendar work is the
//! `httpdate` crate's.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second `httpdate` can format: 9999-12-31T23:59:59Z.
const LAST_FORMATTABLE_SECOND: u64 = 253_402_300_799;

/// Formats `time` as an IMF-fixdate, the preferred HTTP date form:
///
/// ```text
/// IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
///             ; e.g. Sun, 06 Nov 1994 08:49:37 GMT
/// ```
///
/// Sub-second precision is dropped. Times before 1970 or after year 9999
/// (which HTTP dates cannot express here) are clamped to those bounds
/// rather than panicking. Tornado calls this `format_timestamp`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use squall::httputil::format_http_date;
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn format_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(clamp(time))
}

/// Parses an HTTP date in any of the three forms RFC 9110 §5.6.7 says a
/// recipient must accept: IMF-fixdate, obsolete RFC 850 and asctime.
/// Returns `None` for anything else.
///
/// ```
/// use squall::httputil::{format_http_date, parse_http_date};
/// let t = parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").unwrap();
/// assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

fn clamp(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(clamped_unix_seconds(time))
}

/// Whole seconds from 1970-01-01 to `time`, clamped to what a four-digit
/// year can show: 0 for earlier times, 9999-12-31T23:59:59Z for later
/// ones. The HTTP dates here and the log's timestamps
/// (`crate::logging`) both format from it.
pub(crate) fn clamped_unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_FORMATTABLE_SECOND)
}

/// The `Date` header value, re-formatted at most once per second.
///
/// One per server (the loop is single-threaded, so no locking):
///
/// ```
/// use std::time::SystemTime;
/// use squall::httputil::DateCache;
/// let mut dates = DateCache::new();
/// let value: &str = dates.get(SystemTime::now());
/// assert!(value.ends_with(" GMT"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DateCache {
    second: Option<u64>,
    value: String,
}

impl DateCache {
    /// An empty cache; the first [`DateCache::get`] formats.
    pub fn new() -> Self {
        Self::default()
    }

    /// The HTTP date for `now`, formatted only when the whole second
    /// differs from the previous call's (the clock is passed in, so tests
    /// and the loop's cached time can drive it).
    pub fn get(&mut self, now: SystemTime) -> &str {
        let now = clamp(now);
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.second != Some(second) {
            self.value.clear();
            // Writing into a String cannot fail.
            let _ = write!(self.value, "{}", httpdate::HttpDate::from(now));
            self.second = Some(second);
        }
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(format_http_date(at(0, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(at(784_111_777, 999_999_999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn out_of_range_times_are_clamped_not_panics() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let far = at(LAST_FORMATTABLE_SECOND + 1_000_000, 0);
        assert_eq!(format_http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        let mut cache = DateCache::new();
        assert_eq!(cache.get(before), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn parses_all_three_forms_and_rejects_junk() {
        let want = Some(at(784_111_777, 0));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT "), want);
        for junk in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "\u{e9}\u{e9}\u{e9}",
        ] {
            assert_eq!(parse_http_date(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn cache_reformats_only_when_the_second_changes() {
        let mut cache = DateCache::new();
        assert_eq!(
            cache.get(at(784_111_777, 0)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let first = cache.get(at(784_111_777, 900_000_000)).as_ptr();
        assert_eq!(cache.get(at(784_111_777, 1)).as_ptr(), first);
        assert_eq!(
            cache.get(at(784_111_778, 0)),
            "Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Going back in time (clock adjusted) is also a change.
        assert_eq!(
            cache.get(at(784_111_777, 0)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
