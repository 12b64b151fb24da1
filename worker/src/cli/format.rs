//! Text output and argument parsing shared by the on-call commands: aligned plain-text tables,
//! compact ages ("3m05s"), and the time arguments (`--since 1h` or a timestamp, `--older-than 7d`,
//! `--max-age 300`).
//!
//! Tables are hand-formatted (no colour, no box drawing) so they read the same in a terminal, a
//! pager, a Slack paste and a log; scripts use `--json` instead of parsing them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::queue::JobId;

/// How a column's cells line up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Renders rows under headers, columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|(h, _)| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(headers)
            .map(|((cell, &w), (_, align))| match align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A short age or duration: `850ms`, `12s`, `3m05s`, `2h07m`, `3d04h`.
pub fn age(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `2026-01-02 03:04:05` (UTC).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `--since`: an RFC 3339 timestamp, or a duration meaning that long ago (`1h`, `30m`, `2d`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = parse_duration(text)?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}

/// A duration: `90s`, `15m`, `7d`, `1h 30m` (humantime), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is neither a duration (such as 90s, 15m, 7d) nor a timestamp: {e}")
    })
}

/// A failed job's id: a job id (26-character ULID) or `entry-<stream id>` for an envelope that
/// never decoded. Anything else is a usage error before any store is asked.
pub fn parse_failed_id(text: &str) -> Result<String, String> {
    let entry = text
        .strip_prefix("entry-")
        .and_then(|id| id.split_once('-'))
        .is_some_and(|(ms, seq)| {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        });
    if entry || JobId::parse(text).is_some() {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a failed-job id (a 26-character job id such as \
             01JD7ZQ4X8T5V9M2N6B3C1K0RA, or entry-<stream id>)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_compact() {
        for (ms, want) in [
            (0, "0ms"),
            (999, "999ms"),
            (12_000, "12s"),
            (185_000, "3m05s"),
            (7_620_000, "2h07m"),
            (273_600_000, "3d04h"),
        ] {
            assert_eq!(age(ms), want);
        }
    }

    #[test]
    fn ids_are_validated_before_asking_a_store() {
        assert!(parse_failed_id("01JD7ZQ4X8T5V9M2N6B3C1K0RA").is_ok());
        assert!(parse_failed_id("entry-1700000000000-0").is_ok());
        for bad in [
            "",
            "42",
            "entry-",
            "entry-12",
            "entry-a-b",
            "01JD7ZQ4X8T5V9M2N6B3C1K0R!",
        ] {
            assert!(parse_failed_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_since() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        let at = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(timestamp(at), "2026-01-02 03:04:05");
        assert!(parse_since("1h").unwrap() < Utc::now());
    }

    #[test]
    fn tables_align_columns() {
        let out = table(
            &[("NAME", Align::Left), ("N", Align::Right)],
            &[
                vec!["a".into(), "10".into()],
                vec!["bbb".into(), "2".into()],
            ],
        );
        assert_eq!(out, "NAME   N\na     10\nbbb    2\n");
    }
}
