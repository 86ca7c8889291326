//! Progress of long commands (train, eval, predict, demo, prepare, similarity): indicatif's bar
//! on a terminal; when standard error is a pipe or a file (a batch job's log), where the bar
//! draws nothing, one plain line every `T2S_PROGRESS_INTERVAL` seconds (default 30) and at the
//! end, with the position, rate, ETA and the bar's message (losses).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines when standard error is not a terminal.
pub const INTERVAL_ENV: &str = "T2S_PROGRESS_INTERVAL";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// A progress display over `len` steps.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<Mutex<Plain>>,
}

/// The state of the plain lines.
struct Plain {
    label: String,
    len: u64,
    started: Instant,
    /// Position when the clock started (a resumed run starts past 0).
    start_pos: Option<u64>,
    last_line: Option<Instant>,
    interval: Duration,
    pos: u64,
    message: String,
}

impl Progress {
    /// A display labelled `label`; `template` is the bar's indicatif template (used on a terminal).
    pub fn new(label: &str, len: usize, template: &str) -> Self {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
        let plain = (!std::io::stderr().is_terminal()).then(|| {
            Mutex::new(Plain {
                label: label.to_string(),
                len: len as u64,
                started: Instant::now(),
                start_pos: None,
                last_line: None,
                interval: interval_from_env(),
                pos: 0,
                message: String::new(),
            })
        });
        Self { bar, plain }
    }

    /// The underlying bar (for its prefix and the like).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Moves to `pos` steps done.
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        self.update(|p| p.pos = pos);
    }

    /// Adds `n` steps done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.update(|p| p.pos += n);
    }

    /// Sets the text shown after the position (losses, the current file).
    pub fn set_message(&self, message: String) {
        if let Some(plain) = &self.plain {
            if let Ok(mut p) = plain.lock() {
                p.message = message.clone();
            }
        }
        self.bar.set_message(message);
    }

    /// Runs `f` (which prints) without garbling the bar.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }

    fn update(&self, change: impl FnOnce(&mut Plain)) {
        let Some(plain) = &self.plain else { return };
        let Ok(mut p) = plain.lock() else { return };
        change(&mut p);
        if p.start_pos.is_none() {
            // The clock starts at the first update (the rate counts the steps after it: the
            // first step of a run or of a resume includes start-up work).
            p.started = Instant::now();
            p.start_pos = Some(p.pos);
        }
        let now = Instant::now();
        let due = p.last_line.is_none_or(|t| now.duration_since(t) >= p.interval) || p.pos >= p.len;
        if due {
            eprintln!("{}", p.line(now));
            p.last_line = Some(now);
        }
    }
}

impl Plain {
    /// `train 120/40000 (0.3 %) 1.52 it/s ETA 7h 18m loss_source 0.4123` (no rate or ETA before
    /// a step has been timed).
    fn line(&self, now: Instant) -> String {
        let done = self.pos.saturating_sub(self.start_pos.unwrap_or(0));
        let secs = now.duration_since(self.started).as_secs_f64();
        let percent = if self.len > 0 { 100.0 * self.pos as f64 / self.len as f64 } else { 100.0 };
        let mut line = format!("{} {}/{} ({percent:.1} %)", self.label, self.pos, self.len);
        if done > 0 && secs > 0.0 {
            let rate = done as f64 / secs;
            let eta = format_duration(self.len.saturating_sub(self.pos) as f64 / rate);
            line.push_str(&format!(" {rate:.2} it/s ETA {eta}"));
        }
        if !self.message.is_empty() {
            line.push(' ');
            line.push_str(&self.message);
        }
        line
    }
}

/// `T2S_PROGRESS_INTERVAL` in seconds (0: a line per step), else 30 s.
fn interval_from_env() -> Duration {
    interval_from(std::env::var(INTERVAL_ENV).ok().as_deref())
}

/// The interval a value of `T2S_PROGRESS_INTERVAL` gives: 30 s for what is not a duration.
fn interval_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// `3h 05m`, `4m 10s`, `12s`.
fn format_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_variable_falls_back_on_what_is_not_a_duration() {
        assert_eq!(interval_from(Some(" 2.5 ")), Duration::from_millis(2500));
        assert_eq!(interval_from(Some("0")), Duration::ZERO);
        for bad in [None, Some("-1"), Some("soon"), Some("inf"), Some("1e30"), Some("NaN")] {
            assert_eq!(interval_from(bad), DEFAULT_INTERVAL, "{bad:?}");
        }
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(format_duration(12.4), "12s");
        assert_eq!(format_duration(250.0), "4m 10s");
        assert_eq!(format_duration(3.0 * 3600.0 + 5.0 * 60.0 + 59.0), "3h 05m");
    }

    #[test]
    fn a_line_says_position_rate_eta_and_message() {
        let t0 = Instant::now();
        let p = Plain {
            label: "train".into(),
            len: 100,
            started: t0,
            start_pos: Some(20),
            last_line: None,
            interval: DEFAULT_INTERVAL,
            pos: 30,
            message: "loss_source 0.5000".into(),
        };
        // 10 steps in 5 s: 2 it/s, 70 steps left: 35 s.
        assert_eq!(p.line(t0 + Duration::from_secs(5)), "train 30/100 (30.0 %) 2.00 it/s ETA 35s loss_source 0.5000");
        // Nothing timed yet: no rate.
        let first = Plain { pos: 20, message: String::new(), ..p };
        assert_eq!(first.line(t0), "train 20/100 (20.0 %)");
    }
}
