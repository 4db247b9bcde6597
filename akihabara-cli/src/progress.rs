//! Progress for long work, on standard error. indicatif draws nothing when
//! standard error is not a terminal, so piped and logged output stays as it
//! was: the bars and spinners are for people watching.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps named `unit` ("windows", "slots"), labelled `what`.
pub fn bar(len: u64, unit: &str, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{elapsed}} elapsed, about {{eta}} left"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A spinner with the time so far, for work whose length is unknown (a key
/// derivation, a proof); it ticks on its own until finished or dropped.
pub fn spinner(what: &str) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        s.set_style(style);
    }
    s.set_message(what.to_owned());
    s.enable_steady_tick(Duration::from_millis(120));
    s
}
