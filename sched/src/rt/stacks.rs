//! The runtime's stacks: the default source (plain `mmap`, or `mmap` bound to the starting CPU's
//! node on multi-node hosts) or one given to [`Builder::stack_source`](super::Builder::stack_source),
//! behind one concrete type so task headers and the pool need no type parameter.
//!
//! # Which source by default
//! - One node: [`MmapSource`] (first touch places every page on the only node).
//! - Several nodes, workers pinned: [`NumaMmapSource`], binding each fresh stack to the node of
//!   the CPU that starts its task (`mbind`, `MPOL_PREFERRED`, before first touch), so the deep
//!   pages a task touches after migrating still come from its first CPU's node, and the pool's
//!   per-CPU lists keep recycled stacks on that node.
//! - Several nodes, workers not pinned (`Builder::pin(false)`): [`MmapSource`]; with no pinning
//!   the topology's CPUs need not be where the worker runs, so binding would be a guess.
//!
//! A custom source's stacks are boxed once when made and then recycled by the pool like the
//! default ones: no allocation on the spawn path once the pool is warm.

use std::boxed::Box;
use std::ops::Range;

use crate::stack::{MmapSource, MmapStack, NumaMmapSource, StackError, StackSource, TaskStack};

/// A stack the runtime runs a task on.
pub(crate) enum RtStack {
    /// From the default sources.
    Mmap(MmapStack),
    /// From a user-given source.
    Custom(Box<dyn TaskStack>),
}

impl TaskStack for RtStack {
    #[inline]
    fn top(&self) -> *mut u8 {
        match self {
            RtStack::Mmap(s) => s.top(),
            RtStack::Custom(s) => s.top(),
        }
    }
    fn usable_bytes(&self) -> usize {
        match self {
            RtStack::Mmap(s) => s.usable_bytes(),
            RtStack::Custom(s) => s.usable_bytes(),
        }
    }
    fn guard(&self) -> Range<usize> {
        match self {
            RtStack::Mmap(s) => s.guard(),
            RtStack::Custom(s) => s.guard(),
        }
    }
}

impl RtStack {
    /// Retires the stack of an abandoned task (its frames are never unwound, so the memory is
    /// never reused): an `mmap` stack is made inaccessible and its pages released
    /// ([`MmapStack::quarantine`]); a custom stack is leaked, as its source cannot be asked to
    /// fence it off.
    pub(crate) fn quarantine(self) {
        match self {
            RtStack::Mmap(s) => s.quarantine(),
            RtStack::Custom(s) => core::mem::forget(s),
        }
    }
}

/// The object-safe face of a user's [`StackSource`].
pub(crate) trait DynSource: Send + Sync {
    fn allocate_boxed(
        &self,
        usable_bytes: usize,
        cpu: Option<usize>,
    ) -> Result<Box<dyn TaskStack>, StackError>;
}

impl<S> DynSource for S
where
    S: StackSource,
    S::Stack: 'static,
{
    fn allocate_boxed(
        &self,
        usable_bytes: usize,
        cpu: Option<usize>,
    ) -> Result<Box<dyn TaskStack>, StackError> {
        StackSource::allocate_for(self, usable_bytes, cpu)
            .map(|s| Box::new(s) as Box<dyn TaskStack>)
    }
}

/// Where the runtime's pool gets stacks (see the module docs).
pub(crate) enum RtSource {
    /// Plain `mmap`, first-touch placement.
    Mmap(MmapSource),
    /// `mmap` bound to the starting CPU's node.
    Numa(NumaMmapSource),
    /// The builder's.
    Custom(Box<dyn DynSource>),
}

impl RtSource {
    /// Wraps a user's source.
    pub(crate) fn custom<S>(source: S) -> RtSource
    where
        S: StackSource + 'static,
        S::Stack: 'static,
    {
        RtSource::Custom(Box::new(source))
    }

    /// The source's name, for reports.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            RtSource::Mmap(_) => "mmap",
            RtSource::Numa(_) => "mmap+mbind",
            RtSource::Custom(_) => "custom",
        }
    }
}

impl StackSource for RtSource {
    type Stack = RtStack;
    fn allocate(&self, usable_bytes: usize) -> Result<RtStack, StackError> {
        StackSource::allocate_for(self, usable_bytes, None)
    }
    fn allocate_for(&self, usable_bytes: usize, cpu: Option<usize>) -> Result<RtStack, StackError> {
        match self {
            RtSource::Mmap(s) => StackSource::allocate_for(s, usable_bytes, cpu).map(RtStack::Mmap),
            RtSource::Numa(s) => StackSource::allocate_for(s, usable_bytes, cpu).map(RtStack::Mmap),
            RtSource::Custom(s) => s.allocate_boxed(usable_bytes, cpu).map(RtStack::Custom),
        }
    }
}
