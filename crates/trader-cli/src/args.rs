//! Flag values shared by several commands.

use anyhow::Context;
use chrono::DateTime;

/// An RFC 3339 time flag (`--from 2018-09-01T00:00:00Z`) as epoch seconds;
/// the error names the flag and the value.
pub(crate) fn parse_time(flag: &str, s: &str) -> anyhow::Result<i64> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{flag} {s:?} is not an RFC 3339 time"))?
        .timestamp())
}
