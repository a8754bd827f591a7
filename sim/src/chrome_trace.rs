//! Schedule traces in the Chrome trace-event JSON format (opens in Perfetto and
//! chrome://tracing).
//!
//! One process per run (`pid` = policy index), one thread per CPU (`tid` = logical CPU, named
//! `cpuN (node K)`). A task segment is a complete event (`ph: X`) named `task <serial>`; steals
//! are instant events (`ph: i`) on the thief with the victim and count in `args`; parks are
//! complete events named `idle`. Times are microseconds with nanosecond decimals.
//!
//! Events stream to the file as they happen, so memory does not grow with the run; at most
//! `max_events` are written, shared equally between the policies of a comparison (then a final
//! instant event says the trace was truncated).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A streaming trace writer.
pub struct TraceWriter {
    out: BufWriter<File>,
    path: String,
    first: bool,
    written: u64,
    max_events: u64,
    /// `written` value at which the current run's share of `max_events` is used up.
    run_limit: u64,
    truncated: bool,
    error: Option<String>,
    pid: u32,
}

fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

impl TraceWriter {
    /// Creates the file and writes the header.
    pub fn create(path: &Path, max_events: u64) -> Result<TraceWriter, String> {
        let file = File::create(path)
            .map_err(|e| format!("--trace {}: cannot create: {e}", path.display()))?;
        let mut w = TraceWriter {
            out: BufWriter::new(file),
            path: path.display().to_string(),
            first: true,
            written: 0,
            max_events,
            run_limit: max_events,
            truncated: false,
            error: None,
            pid: 0,
        };
        w.raw("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
        Ok(w)
    }

    fn raw(&mut self, s: &str) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(s.as_bytes())
        {
            self.error = Some(format!("--trace {}: write failed: {e}", self.path));
        }
    }

    fn event(&mut self, body: &str) {
        if self.written >= self.run_limit {
            self.truncated = true;
            return;
        }
        self.metadata(body);
    }

    /// Writes an event regardless of the budget (process and thread names, the truncation note).
    fn metadata(&mut self, body: &str) {
        self.written += 1;
        let sep = if self.first { "" } else { ",\n" };
        self.first = false;
        let line = format!("{sep}{{{body}}}");
        self.raw(&line);
    }

    /// Starts the section of one policy: names the process and its CPU threads, and gives the run
    /// `budget` events (so that every policy of a comparison appears in a truncated trace).
    pub fn begin_run(&mut self, pid: u32, policy: &str, cpu_nodes: &[usize], budget: u64) {
        self.pid = pid;
        self.metadata(&format!("\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"args\":{{\"name\":\"policy {policy}\"}}"));
        for (cpu, node) in cpu_nodes.iter().enumerate() {
            self.metadata(&format!(
                "\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{cpu},\"args\":{{\"name\":\"cpu{cpu} (node {node})\"}}"
            ));
        }
        self.run_limit = self.written.saturating_add(budget);
    }

    /// A task segment.
    #[inline]
    pub fn segment(&mut self, cpu: usize, serial: u64, start_ns: u64, dur_ns: u64, home: usize) {
        if self.written >= self.run_limit {
            self.truncated = true;
            return;
        }
        let pid = self.pid;
        self.event(&format!(
            "\"ph\":\"X\",\"name\":\"task {serial}\",\"cat\":\"run\",\"pid\":{pid},\"tid\":{cpu},\"ts\":{},\"dur\":{},\"args\":{{\"home_node\":{home}}}",
            us(start_ns),
            us(dur_ns)
        ));
    }

    /// A steal.
    pub fn steal(&mut self, thief: usize, victim: usize, n: usize, tier: &str, at_ns: u64) {
        let pid = self.pid;
        self.event(&format!(
            "\"ph\":\"i\",\"s\":\"t\",\"name\":\"steal {n} from cpu{victim} ({tier})\",\"cat\":\"steal\",\"pid\":{pid},\"tid\":{thief},\"ts\":{}",
            us(at_ns)
        ));
    }

    /// An idle period.
    pub fn idle(&mut self, cpu: usize, start_ns: u64, end_ns: u64) {
        let pid = self.pid;
        self.event(&format!(
            "\"ph\":\"X\",\"name\":\"idle\",\"cat\":\"idle\",\"pid\":{pid},\"tid\":{cpu},\"ts\":{},\"dur\":{}",
            us(start_ns),
            us(end_ns.saturating_sub(start_ns))
        ));
    }

    /// Closes the JSON document.
    pub fn finish(mut self) -> Result<u64, String> {
        if self.truncated {
            let max = self.max_events;
            self.metadata(&format!(
                "\"ph\":\"i\",\"s\":\"g\",\"name\":\"trace truncated: at most {max} events, shared between the policies\",\"pid\":0,\"tid\":0,\"ts\":0"
            ));
        }
        self.raw("\n]}\n");
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(format!("--trace {}: write failed: {e}", self.path));
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.written),
        }
    }
}
