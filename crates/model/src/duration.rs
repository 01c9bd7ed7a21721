//! Human durations the way Docker prints them (go-units' `HumanDuration`).

use std::time::Duration;

/// "Less than a second", "3 seconds", "About a minute", "10 minutes", "5 hours", "3 days"…
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let s = secs as f64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if (s / 60.0).round() as u64 == 1 {
        "About a minute".into()
    } else if secs < 3600 {
        format!("{} minutes", (s / 60.0).round() as u64)
    } else if (s / 3600.0).round() as u64 == 1 {
        "About an hour".into()
    } else if secs < 48 * 3600 {
        format!("{} hours", (s / 3600.0).round() as u64)
    } else if secs < 14 * 86400 {
        format!("{} days", secs / 86400)
    } else if secs < 60 * 86400 {
        format!("{} weeks", secs / (7 * 86400))
    } else if secs < 730 * 86400 {
        format!("{} months", secs / (30 * 86400))
    } else {
        format!("{} years", secs / (365 * 86400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(65)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3700)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(21 * 86400)), "3 weeks");
    }
}
