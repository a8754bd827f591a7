//! Progress bars for long runs (indicatif), drawn on stderr only when it is a terminal so that
//! piped output stays clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar, or nothing when stderr is not a terminal.
#[derive(Clone, Debug)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar counting `unit` (e.g. "tasks"), length set later.
    pub fn new(label: &str, unit: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let b = ProgressBar::new(0);
        let template =
            format!("{{spinner}} {label} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{eta}} left)");
        b.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar(Some(b))
    }

    /// Sets the total if it is not set yet.
    pub fn set_total_once(&self, total: u64) {
        if let Some(b) = &self.0
            && b.length() == Some(0)
        {
            b.set_length(total);
        }
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
        }
    }

    /// Advances by one.
    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
