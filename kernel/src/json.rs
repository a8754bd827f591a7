//! A small JSON writer for the `RESULT {json}` lines (the kernel has no serde).

use alloc::string::String;
use core::fmt::Write;

/// Builds one JSON value into a string. Callers write keys and values in order; commas are
/// inserted automatically.
pub struct Json {
    out: String,
    /// Whether the current container already has an element (so the next needs a comma).
    needs_comma: bool,
}

impl Json {
    /// An empty writer.
    pub fn new() -> Self {
        Self {
            out: String::new(),
            needs_comma: false,
        }
    }

    fn sep(&mut self) {
        if self.needs_comma {
            self.out.push(',');
        }
        self.needs_comma = true;
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// Writes `"key":` (inside an object).
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        self.string(k);
        self.out.push(':');
        self.needs_comma = false;
        self
    }

    /// Opens an object.
    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.needs_comma = false;
        self
    }

    /// Closes an object.
    pub fn end_object(&mut self) -> &mut Self {
        self.out.push('}');
        self.needs_comma = true;
        self
    }

    /// Opens an array.
    pub fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.needs_comma = false;
        self
    }

    /// Closes an array.
    pub fn end_array(&mut self) -> &mut Self {
        self.out.push(']');
        self.needs_comma = true;
        self
    }

    /// Writes an unsigned number.
    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// Writes a boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// Writes a string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.sep();
        self.string(v);
        self
    }

    /// Writes a number with a fractional part (fixed three decimals; the kernel is soft-float
    /// so the value is given as thousandths).
    pub fn milli(&mut self, thousandths: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{}.{:03}", thousandths / 1000, thousandths % 1000);
        self
    }

    /// `"key": unsigned`.
    pub fn field_uint(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k).uint(v)
    }

    /// `"key": bool`.
    pub fn field_bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k).bool(v)
    }

    /// `"key": "string"`.
    pub fn field_str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).str(v)
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}
