//! Retry schedules as data: the delays between attempts of one delivery, their jitter, and how a
//! receiver's `Retry-After` stretches them (DESIGN.md §6).
//!
//! A schedule of N delays gives N + 1 attempts. Delays count from the end of the previous
//! attempt and vary by ±10 %; the functions here are pure, so tests check due times, not clocks.

use std::time::Duration;

use rand::Rng;

/// The seed's schedule: 1, 5 and 15 minutes (four attempts in all).
pub const DEFAULT_SCHEDULE_SECS: [i32; 3] = [60, 300, 900];

/// The longer preset for receivers that are down for hours (Svix's schedule): eight attempts
/// over about a day and a half.
pub const LONG_SCHEDULE_SECS: [i32; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// Each delay varies by this fraction either way, so retries of a burst do not arrive together.
pub const JITTER: f64 = 0.1;

/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Longest schedule and longest single delay accepted from a tenant.
pub const MAX_SCHEDULE_LEN: usize = 16;
pub const MAX_DELAY_SECS: i32 = 86_400;

/// The schedule a subscription uses: its own, or the default.
pub fn effective(own: Option<&[i32]>) -> Vec<Duration> {
    own.unwrap_or(&DEFAULT_SCHEDULE_SECS)
        .iter()
        .map(|s| Duration::from_secs(u64::from((*s).max(0).unsigned_abs())))
        .collect()
}

/// A preset by name (`default`, `long`), for the API layer.
pub fn preset(name: &str) -> Option<Vec<i32>> {
    match name {
        "default" => Some(DEFAULT_SCHEDULE_SECS.to_vec()),
        "long" => Some(LONG_SCHEDULE_SECS.to_vec()),
        _ => None,
    }
}

/// Checks a tenant-supplied schedule: 1 to 16 delays of 1 s to a day.
pub fn validate(schedule: &[i32]) -> Result<(), String> {
    if schedule.is_empty() || schedule.len() > MAX_SCHEDULE_LEN {
        return Err(format!(
            "retry_schedule_secs must have 1 to {MAX_SCHEDULE_LEN} delays"
        ));
    }
    match schedule.iter().find(|d| !(1..=MAX_DELAY_SECS).contains(*d)) {
        Some(bad) => Err(format!(
            "retry delay {bad} s is outside 1..={MAX_DELAY_SECS} s"
        )),
        None => Ok(()),
    }
}

/// The delay after retry `index` (0 after the first attempt of a run), jittered, stretched by a
/// longer `Retry-After` (capped at an hour); `None` when the schedule is spent.
pub fn next_delay(
    schedule: &[Duration],
    index: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let nominal = *schedule.get(index as usize)?;
    let factor = 1.0 + rng.random_range(-JITTER..=JITTER);
    let jittered = Duration::from_secs_f64(nominal.as_secs_f64() * factor);
    let asked = retry_after
        .map(|d| d.min(RETRY_AFTER_CAP))
        .unwrap_or_default();
    Some(jittered.max(asked))
}

/// The bounds `next_delay` stays within when no `Retry-After` applies.
pub fn bounds(schedule: &[Duration], index: u32) -> Option<(Duration, Duration)> {
    let nominal = schedule.get(index as usize)?.as_secs_f64();
    Some((
        Duration::from_secs_f64(nominal * (1.0 - JITTER)),
        Duration::from_secs_f64(nominal * (1.0 + JITTER)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn check(own: Option<&[i32]>, expected_secs: &[f64]) {
        let schedule = effective(own);
        let mut rng = StdRng::seed_from_u64(3);
        for (i, nominal) in expected_secs.iter().enumerate() {
            let (lo, hi) = bounds(&schedule, i as u32).unwrap();
            assert!(
                (lo.as_secs_f64() - nominal * 0.9).abs() < 1e-6,
                "#{i}: {lo:?}"
            );
            assert!(
                (hi.as_secs_f64() - nominal * 1.1).abs() < 1e-6,
                "#{i}: {hi:?}"
            );
            for _ in 0..100 {
                let d = next_delay(&schedule, i as u32, None, &mut rng).unwrap();
                assert!(d >= lo && d <= hi, "#{i}: {d:?}");
            }
        }
        let spent = expected_secs.len() as u32;
        assert_eq!(next_delay(&schedule, spent, None, &mut rng), None);
    }

    #[test]
    fn the_default_waits_one_five_and_fifteen_minutes() {
        check(None, &[60.0, 300.0, 900.0]);
    }

    #[test]
    fn the_long_preset_spans_a_day_and_a_half() {
        let long = preset("long").unwrap();
        check(
            Some(&long),
            &[5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        );
    }

    #[test]
    fn a_subscription_may_bring_its_own_schedule() {
        check(Some(&[1, 5, 15]), &[1.0, 5.0, 15.0]);
    }

    #[test]
    fn retry_after_stretches_a_shorter_delay_but_never_past_an_hour() {
        let schedule = effective(Some(&[1, 7200]));
        let mut rng = StdRng::seed_from_u64(1);
        let long_ask = Some(Duration::from_secs(120));
        assert_eq!(
            next_delay(&schedule, 0, long_ask, &mut rng),
            Some(Duration::from_secs(120))
        );
        let huge_ask = Some(Duration::from_secs(10 * 3600));
        assert_eq!(
            next_delay(&schedule, 0, huge_ask, &mut rng),
            Some(RETRY_AFTER_CAP)
        );
        let short_ask = Some(Duration::from_secs(5));
        let d = next_delay(&schedule, 1, short_ask, &mut rng).unwrap();
        assert!(
            d >= Duration::from_secs(6480),
            "a shorter ask does not shorten: {d:?}"
        );
        assert_eq!(next_delay(&schedule, 2, long_ask, &mut rng), None);
    }

    #[test]
    fn tenant_schedules_are_bounded() {
        assert!(validate(&[1, 5, 15]).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[0]).is_err());
        assert!(validate(&[86_401]).is_err());
        assert!(validate(&[1; 17]).is_err());
    }
}
