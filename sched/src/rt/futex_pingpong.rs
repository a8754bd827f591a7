//! The OS-thread baseline the runtime's ping-pong is measured against (`manycore bench` and the
//! criterion benches use this one implementation): two OS threads hand a token back and forth
//! through one futex word, each waiting in `FUTEX_WAIT` until the other's store and
//! `FUTEX_WAKE`.
//!
//! Round `i` (from 0): the measuring side stores `2i + 1` and wakes the partner, then waits for
//! `2i + 2`, which the partner stores after seeing `2i + 1`. A round is two one-way handoffs.

use std::string::String;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use super::platform::{futex_wait, futex_wake};

/// The measuring side of a futex ping-pong; the partner thread runs from [`FutexPingPong::start`].
pub struct FutexPingPong {
    /// The token word; written by both threads in turn (see the module docs).
    word: Arc<AtomicU32>,
    /// Rounds this side has completed.
    rounds_done: u64,
}

impl FutexPingPong {
    /// Starts the partner thread, which first runs `setup` (pinning it, for instance; the value
    /// is kept until the partner ends) and then answers exactly `rounds` rounds. The partner's
    /// handle returns `setup`'s error if it failed (the caller's rounds would then wait
    /// forever: check it when `setup` can fail, e.g. by joining after a failed pin).
    pub fn start<G>(
        rounds: u64,
        setup: impl FnOnce() -> Result<G, String> + Send + 'static,
    ) -> (FutexPingPong, JoinHandle<Result<(), String>>) {
        let word = Arc::new(AtomicU32::new(0));
        let partner_word = word.clone();
        let partner = std::thread::spawn(move || {
            let _kept = setup()?;
            for i in 0..rounds {
                let base = (i as u32).wrapping_mul(2);
                wait_for(&partner_word, base.wrapping_add(1));
                hand_over(&partner_word, base.wrapping_add(2));
            }
            Ok(())
        });
        (
            FutexPingPong {
                word,
                rounds_done: 0,
            },
            partner,
        )
    }

    /// One round from the measuring side: hands the token over and waits until it comes back.
    /// Call it at most as many times as the partner was started for.
    #[inline]
    pub fn round(&mut self) {
        let base = (self.rounds_done as u32).wrapping_mul(2);
        hand_over(&self.word, base.wrapping_add(1));
        wait_for(&self.word, base.wrapping_add(2));
        self.rounds_done += 1;
    }
}

/// Waits until `word` holds `until` (sleeping in the kernel while it holds anything else).
fn wait_for(word: &AtomicU32, until: u32) {
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen == until {
            return;
        }
        futex_wait(word, seen, None);
    }
}

fn hand_over(word: &AtomicU32, v: u32) {
    word.store(v, Ordering::Release);
    futex_wake(word);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round completes, in order, and the partner answers exactly the rounds asked for.
    #[test]
    fn futex_pingpong_completes_every_round() {
        let (mut pp, partner) = FutexPingPong::start(1000, || Ok(()));
        for _ in 0..1000 {
            pp.round();
        }
        partner.join().expect("partner").expect("setup");
        assert_eq!(pp.word.load(Ordering::Acquire), 2000);
    }

    #[test]
    fn a_failed_setup_is_reported_by_the_partner() {
        let (_pp, partner) = FutexPingPong::start(1, || Err::<(), _>(String::from("no such CPU")));
        assert_eq!(
            partner.join().expect("partner"),
            Err(String::from("no such CPU"))
        );
    }
}
