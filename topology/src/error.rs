//! One error type for every topology source: it says which source, where, and what was expected.

use alloc::string::String;
use core::fmt;

/// Which input an [`Error`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A Linux cpulist (`0-3,8`).
    CpuList,
    /// An hwloc synthetic description string.
    Synthetic,
    /// An hwloc XML document.
    Xml,
    /// A Linux sysfs tree.
    Sysfs,
    /// CPUID leaves.
    Cpuid,
    /// ACPI tables (MADT, SRAT, SLIT).
    Acpi,
    /// A description that parsed but does not form a consistent machine.
    Build,
    /// Reading a file or directory failed.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::CpuList => "cpulist",
            ErrorKind::Synthetic => "synthetic topology",
            ErrorKind::Xml => "hwloc XML",
            ErrorKind::Sysfs => "sysfs",
            ErrorKind::Cpuid => "CPUID",
            ErrorKind::Acpi => "ACPI",
            ErrorKind::Build => "topology",
            ErrorKind::Io => "I/O",
        })
    }
}

/// A topology input error: `"{kind} {location}: {message}"`, e.g.
/// `synthetic topology at byte 7 of "pack:2 core:x": expected an arity after ':', found "x"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The source that failed.
    pub kind: ErrorKind,
    /// Where: a byte offset, line and column, file path or table offset, in words.
    pub location: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl Error {
    /// Builds an error.
    pub fn new(kind: ErrorKind, location: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            kind,
            location: location.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}: {}", self.kind, self.message)
        } else {
            write!(f, "{} {}: {}", self.kind, self.location, self.message)
        }
    }
}

impl core::error::Error for Error {}
