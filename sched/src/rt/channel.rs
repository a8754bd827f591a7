//! A bounded multi-producer, multi-consumer channel whose blocking send and receive block the
//! task, not the worker.
//!
//! One short lock guards the buffer (a ring of `capacity` slots) and two FIFOs of waiters:
//! senders waiting for room and receivers waiting for a value. Every push signals one waiting
//! receiver and every pop one waiting sender, after the lock is released. A signaled waiter
//! retries; if another task took the value (or the room) first it queues again, so a value is
//! never lost and never delivered twice, and values leave in the order they entered.
//!
//! Disconnection: when the last [`Sender`] drops, receivers drain what is buffered and then get
//! [`RecvError`]; when the last [`Receiver`] drops, sends fail with [`SendError`] returning the
//! value. Both wake every waiter of the other side.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};

use super::wait::{Waiter, wait_signaled};

struct State<T> {
    buf: VecDeque<T>,
    /// Senders waiting for room.
    senders_waiting: VecDeque<Waiter>,
    /// Receivers waiting for a value.
    receivers_waiting: VecDeque<Waiter>,
    senders: usize,
    receivers: usize,
}

struct Chan<T> {
    capacity: usize,
    /// Locked by every send, receive and handle drop; held for a few pointer moves.
    state: StdMutex<State<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A channel capacity of zero was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a bounded channel needs a capacity of at least 1")
    }
}

impl std::error::Error for CapacityError {}

/// A bounded channel holding up to `capacity` values (at least 1).
pub fn channel<T>(capacity: usize) -> Result<(Sender<T>, Receiver<T>), CapacityError> {
    if capacity == 0 {
        return Err(CapacityError);
    }
    let chan = Arc::new(Chan {
        capacity,
        state: StdMutex::new(State {
            buf: VecDeque::with_capacity(capacity),
            senders_waiting: VecDeque::new(),
            receivers_waiting: VecDeque::new(),
            senders: 1,
            receivers: 1,
        }),
    });
    Ok((Sender { chan: chan.clone() }, Receiver { chan }))
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half; clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// Every receiver is gone; the value comes back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sending on a channel whose receivers are all gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why `try_send` did not send.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The buffer is full.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

/// Every sender is gone and the buffer is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "receiving on an empty channel whose senders are all gone"
        )
    }
}

impl std::error::Error for RecvError {}

/// Why `try_recv` returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing buffered now.
    Empty,
    /// Nothing buffered and every sender is gone.
    Disconnected,
}

impl<T> Sender<T> {
    /// Sends `v`, blocking the task (or thread) while the buffer is full.
    pub fn send(&self, mut v: T) -> Result<(), SendError<T>> {
        loop {
            match self.try_send(v) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => v = back,
            }
            // Full: queue up, unless room or a disconnect appeared meanwhile.
            let me = {
                let mut st = self.chan.lock();
                if st.receivers == 0 || st.buf.len() < self.chan.capacity {
                    continue;
                }
                let me = Waiter::current();
                st.senders_waiting.push_back(me.clone());
                me
            };
            wait_signaled(&me);
        }
    }

    /// Sends `v` if there is room now.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let wake = {
            let mut st = self.chan.lock();
            if st.receivers == 0 {
                return Err(TrySendError::Disconnected(v));
            }
            if st.buf.len() >= self.chan.capacity {
                return Err(TrySendError::Full(v));
            }
            st.buf.push_back(v);
            st.receivers_waiting.pop_front()
        };
        if let Some(w) = wake {
            w.signal();
        }
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// Receives the oldest value, blocking the task (or thread) while the buffer is empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        loop {
            match self.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) => {}
            }
            let me = {
                let mut st = self.chan.lock();
                if !st.buf.is_empty() || st.senders == 0 {
                    continue;
                }
                let me = Waiter::current();
                st.receivers_waiting.push_back(me.clone());
                me
            };
            wait_signaled(&me);
        }
    }

    /// Receives the oldest value if there is one now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let (v, wake) = {
            let mut st = self.chan.lock();
            match st.buf.pop_front() {
                Some(v) => (v, st.senders_waiting.pop_front()),
                None if st.senders == 0 => return Err(TryRecvError::Disconnected),
                None => return Err(TryRecvError::Empty),
            }
        };
        if let Some(w) = wake {
            w.signal();
        }
        Ok(v)
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let wake = {
            let mut st = self.chan.lock();
            st.senders -= 1;
            if st.senders == 0 {
                core::mem::take(&mut st.receivers_waiting)
            } else {
                VecDeque::new()
            }
        };
        for w in wake {
            w.signal();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let wake = {
            let mut st = self.chan.lock();
            st.receivers -= 1;
            if st.receivers == 0 {
                core::mem::take(&mut st.senders_waiting)
            } else {
                VecDeque::new()
            }
        };
        for w in wake {
            w.signal();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}
