//! Progress of long CLI commands (`export`, `seed`): a bar with rows, rate and ETA on
//! stderr when stderr is a terminal, and nothing at all when it is not (a pipe, a log file,
//! CI), so scripts see only the command's own output.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar counting `total` rows; hidden unless stderr is a terminal.
pub fn rows(total: u64, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!(
        "{verb} {{bar:30.cyan/blue}} {{human_pos}}/{{human_len}} rows  {{rate}}  ETA {{eta}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        let style = style
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
